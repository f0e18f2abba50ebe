"""Closed-loop community referrals (issue #17; docs/referrals.md): the Gravity SDOH CC IG's ServiceRequest + Task
workflow (:mod:`.workflow`, enforced by :mod:`.hook`), the patient's consent (:mod:`.consent`), the community
organisation's side — a system client bound to an Organization, or a one-time link (:mod:`.links`) — and CSV
exchange of status (:mod:`.csvio`)."""
