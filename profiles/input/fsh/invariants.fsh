// FHIRPath invariants. Each is evaluated with the whole resource as context, so a validator can run
// every constraint of a profile against a resource without walking element paths.

Invariant: mecr-goal-1
Description: "A coaching goal has a category from the mECR coaching-goal-category code system."
Expression: "category.coding.where(system = 'https://mecr.dev/fhir/CodeSystem/coaching-goal-category').exists()"
Severity: #error

Invariant: mecr-plan-1
Description: "Every habit of a habit plan has its own habit id: no two activities share one."
Expression: "activity.extension.where(url = 'https://mecr.dev/fhir/StructureDefinition/habit-id').value.isDistinct()"
Severity: #error

Invariant: mecr-plan-2
Description: "A habit that is on hold says why (activity.detail.statusReason)."
Expression: "activity.all(detail.status = 'on-hold' implies detail.statusReason.exists())"
Severity: #error

Invariant: mecr-plan-3
Description: "A habit pause covers whole local days: its period starts on a date (YYYY-MM-DD) and, if it has ended, ends on a date on or after that."
Expression: "activity.extension.where(url = 'https://mecr.dev/fhir/StructureDefinition/habit-pause').all(extension.where(url = 'period').value.start.toString().matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}$') and (extension.where(url = 'period').value.end.exists() implies (extension.where(url = 'period').value.end.toString().matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}$') and extension.where(url = 'period').value.end >= extension.where(url = 'period').value.start)))"
Severity: #error

Invariant: mecr-checkin-1
Description: "A check-in's value is done, partly or not-done from the mECR habit-check-in-result code system."
Expression: "value.coding.where(system = 'https://mecr.dev/fhir/CodeSystem/habit-check-in-result' and (code = 'done' or code = 'partly' or code = 'not-done')).count() = 1"
Severity: #error

Invariant: mecr-checkin-2
Description: "A check-in is for one local calendar day: effectiveDateTime is a date (YYYY-MM-DD) without a time or time zone."
Expression: "effective.toString().matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}$')"
Severity: #error

Invariant: mecr-obs-source
Description: "A wearable reading records its source: the Device that measured it (device) or the system it came from (meta.source)."
Expression: "device.exists() or meta.source.exists()"
Severity: #error

Invariant: mecr-obs-day
Description: "A daily figure covers a day: effectiveDateTime is given at least to the day, or effectivePeriod has a start."
Expression: "(effective is dateTime and effective.toString().length() >= 10) or (effective is Period and effective.start.exists())"
Severity: #error

Invariant: mecr-task-1
Description: "The referral Task's focus is a reference to a ServiceRequest (ServiceRequest/[id], an absolute URL ending so, or a urn:uuid inside a transaction Bundle)."
Expression: "focus.reference.matches('^((https?://.+/)?ServiceRequest/[A-Za-z0-9.-]{1,64}(/_history/[A-Za-z0-9.-]{1,64})?|urn:uuid:[0-9a-fA-F-]{36})$')"
Severity: #error

Invariant: mecr-task-2
Description: "A referral Task that is rejected, cancelled, on hold or failed says why in statusReason.text."
Expression: "(status = 'rejected' or status = 'cancelled' or status = 'on-hold' or status = 'failed') implies statusReason.text.exists()"
Severity: #error

Invariant: mecr-task-3
Description: "Once a referral is accepted (accepted, in-progress, on-hold, completed or failed) the Task names its owner."
Expression: "(status = 'accepted' or status = 'in-progress' or status = 'on-hold' or status = 'completed' or status = 'failed') implies owner.exists()"
Severity: #error

Invariant: mecr-task-4
Description: "A completed referral Task should report what was done in output."
Expression: "status = 'completed' implies output.exists()"
Severity: #warning

Invariant: mecr-enc-1
Description: "A coaching session ends after it starts."
Expression: "(period.start.exists() and period.end.exists()) implies period.end > period.start"
Severity: #error

Invariant: mecr-enc-2
Description: "A finished coaching session has an end time."
Expression: "status = 'finished' implies period.end.exists()"
Severity: #error

Invariant: mecr-enc-3
Description: "Class and modality agree: AMB with in-person, VR with video or audio-only."
Expression: "(class.code = 'AMB' and extension.where(url = 'https://mecr.dev/fhir/StructureDefinition/coaching-session-modality').value.code = 'in-person') or (class.code = 'VR' and (extension.where(url = 'https://mecr.dev/fhir/StructureDefinition/coaching-session-modality').value.code = 'video' or extension.where(url = 'https://mecr.dev/fhir/StructureDefinition/coaching-session-modality').value.code = 'audio-only'))"
Severity: #error

Invariant: mecr-enc-4
Description: "A session's length is in UCUM minutes."
Expression: "length.exists() implies (length.system = 'http://unitsofmeasure.org' and length.code = 'min')"
Severity: #error

Invariant: mecr-enc-5
Description: "A session whose subject is a Group is the group-level session of a group session: its type is coaching-session-group and it is not part of another session."
Expression: "subject.reference.matches('(^|/)Group/[^/]+$') implies (type.coding.where(system = 'https://mecr.dev/fhir/CodeSystem/mecr-codes' and code = 'coaching-session-group').exists() and partOf.empty())"
Severity: #error

Invariant: mecr-enc-6
Description: "A participant's session in a group session (one with partOf) is one person's: its subject is a Patient."
Expression: "partOf.exists() implies subject.reference.matches('(^|/)Patient/[^/]+$')"
Severity: #error

Invariant: mecr-coach-1
Description: "An NPI is 10 digits."
Expression: "identifier.where(system = 'http://hl7.org/fhir/sid/us-npi').all(value.matches('^[0-9]{10}$'))"
Severity: #error
