Profile: MecrCoachingSession
Parent: Encounter
Id: mecr-coaching-session
Title: "mECR Coaching Session"
Description: """
One health and well-being coaching session: who was coached, by which coach (participant with type PPRF,
a mECR Coach PractitionerRole), when and for how long, and how (class AMB in person, VR virtual, with the
modality extension telling video from audio only). A group session is one group-level Encounter whose
subject is the Group of people coached together (type coaching-session-group), plus one Encounter per
participant whose subject is that Patient and whose partOf points at the group-level one; billing counts
the participants' Encounters. The session type (initial, follow-up, group) maps to CPT 0591T, 0592T and
0593T for billing.

Alignment: class codes are the FHIR v3 ActCode values R4's Encounter.class uses (AMB, VR), as US Core
does for virtual visits.
"""
* ^status = #active
* ^experimental = false
* obeys mecr-enc-1 and mecr-enc-2 and mecr-enc-3 and mecr-enc-4 and mecr-enc-5 and mecr-enc-6
* extension contains MecrSessionModalityExtension named modality 1..1 MS
* status MS
* class MS
* class from MecrCoachingSessionClassVS (required)
* type 1..* MS
* type from MecrCoachingSessionTypeVS (extensible)
* subject 1..1 MS
* subject only Reference(Patient or Group)
* subject ^short = "The person coached; for the group-level session of a group session, the Group"
* basedOn MS
* basedOn ^short = "The referral or order for coaching, if any"
* participant 1..* MS
* participant ^slicing.discriminator.type = #pattern
* participant ^slicing.discriminator.path = "type"
* participant ^slicing.rules = #open
* participant contains coach 1..* MS
* participant[coach].type 1..1 MS
* participant[coach].type = $v3-ParticipationType#PPRF
* participant[coach].individual 1..1 MS
* participant[coach].individual only Reference(MecrCoach)
* period 1..1 MS
* period.start 1..1 MS
* period.end MS
* length MS
* length ^short = "Minutes of coaching (UCUM min)"
* reasonReference MS
* serviceProvider MS
* partOf MS
* partOf only Reference(MecrCoachingSession)
* partOf ^short = "The group-level session this participant's session is part of"
