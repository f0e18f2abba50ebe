ValueSet: MecrCoachingGoalCategoryVS
Id: coaching-goal-category
Title: "mECR Coaching Goal Category"
Description: "Categories a coaching goal is filed under."
* ^status = #active
* ^experimental = false
* include codes from system MecrCoachingGoalCategory

ValueSet: MecrCoachingTargetMeasureVS
Id: coaching-target-measure
Title: "mECR Coaching Goal Target Measure"
Description: "LOINC codes a coaching goal's target is measured with. The same codes the wearable profiles record, so a goal's progress can be read from the Observations (Physical Activity IG exercise vital sign and time measures, FHIR vital signs)."
* ^status = #active
* ^experimental = false
* $loinc#41950-7 "Number of steps in 24 hour Measured"
* $loinc#82290-8 "Frequency of moderate to vigorous aerobic physical activity"
* $loinc#68516-4 "On those days that you engage in moderate to strenuous exercise, how many minutes, on average, do you exercise"
* $loinc#89555-7 "How many days per week did you engage in moderate to strenuous physical activity in the last 30 days"
* $loinc#82291-6 "Frequency of muscle-strengthening physical activity"
* $loinc#41981-2 "Calories burned"
* $loinc#93832-4 "Sleep duration"
* $loinc#40443-4 "Heart rate --resting"
* $loinc#29463-7 "Body weight"
* $loinc#39156-5 "Body mass index (BMI) [Ratio]"
* $loinc#8480-6 "Systolic blood pressure"
* $loinc#8462-4 "Diastolic blood pressure"
* $loinc#4548-4 "Hemoglobin A1c/Hemoglobin.total in Blood"
* $loinc#44261-6 "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"
* $loinc#70274-6 "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]"

ValueSet: MecrHabitCheckInResultVS
Id: habit-check-in-result
Title: "mECR Habit Check-in Result"
Description: "done, partly or not-done: the answer of a habit check-in."
* ^status = #active
* ^experimental = false
* include codes from system MecrHabitCheckInResult

ValueSet: MecrHabitPauseReasonVS
Id: habit-pause-reason
Title: "mECR Habit Pause Reason"
Description: "Why a habit is on hold."
* ^status = #active
* ^experimental = false
* include codes from system MecrHabitPauseReason

ValueSet: MecrObservationStatusVS
Id: observation-result-status
Title: "mECR Observation Result Status"
Description: "Observation statuses a recorded reading or check-in may have: it has a value, so it is final (or amended, corrected) or was entered in error. The same restriction the Physical Activity IG applies to its observations."
* ^status = #active
* ^experimental = false
* http://hl7.org/fhir/observation-status#final
* http://hl7.org/fhir/observation-status#amended
* http://hl7.org/fhir/observation-status#corrected
* http://hl7.org/fhir/observation-status#entered-in-error

ValueSet: MecrSleepDurationUnitsVS
Id: sleep-duration-units
Title: "mECR Sleep Duration Units"
Description: "UCUM units a sleep duration is recorded in."
* ^status = #active
* ^experimental = false
* $ucum#h "hour"
* $ucum#min "minute"

ValueSet: MecrReferralCategoryVS
Id: referral-category
Title: "mECR Community Referral Category"
Description: "The social need a community referral addresses: the Gravity SDOH Clinical Care IG's SDOH domain codes, which mECR uses unchanged."
* ^status = #active
* ^experimental = false
* $sdohcc-temp#food-insecurity "Food Insecurity"
* $sdohcc-temp#housing-instability "Housing Instability"
* $sdohcc-temp#homelessness "Homelessness"
* $sdohcc-temp#inadequate-housing "Inadequate Housing"
* $sdohcc-temp#transportation-insecurity "Transportation Insecurity"
* $sdohcc-temp#financial-insecurity "Financial Insecurity"
* $sdohcc-temp#material-hardship "Material Hardship"
* $sdohcc-temp#educational-attainment "Educational Attainment"
* $sdohcc-temp#employment-status "Employment Status"
* $sdohcc-temp#veteran-status "Veteran Status"
* $sdohcc-temp#stress "Stress"
* $sdohcc-temp#social-connection "Social Connection"
* $sdohcc-temp#intimate-partner-violence "Intimate Partner Violence"
* $sdohcc-temp#elder-abuse "Elder Abuse"
* $sdohcc-temp#personal-health-literacy "Personal Health Literacy"
* $sdohcc-temp#health-insurance-coverage-status "Health Insurance Coverage Status"
* $sdohcc-temp#medical-cost-burden "Medical Cost Burden"
* $sdohcc-temp#digital-literacy "Digital Literacy"
* $sdohcc-temp#digital-access "Digital Access"
* $sdohcc-temp#utility-insecurity "Utility Insecurity"
* $sdohcc-temp#sdoh-category-unspecified "SDOH Category Unspecified"

ValueSet: MecrReferralIntentVS
Id: referral-intent
Title: "mECR Referral Intent"
Description: "Intents of a community referral ServiceRequest: an order, as in the Physical Activity IG's referral profile."
* ^status = #active
* ^experimental = false
* http://hl7.org/fhir/request-intent#original-order
* http://hl7.org/fhir/request-intent#order
* http://hl7.org/fhir/request-intent#filler-order

ValueSet: MecrReferralTaskStatusVS
Id: referral-task-status
Title: "mECR Referral Task Status"
Description: "Task statuses a referral Task may have (the Gravity SDOH CC referral workflow): draft while the practice prepares it (before the patient's consent), then requested when it leaves the practice. ready is left out: a referral is never merely 'ready'."
* ^status = #active
* ^experimental = false
* http://hl7.org/fhir/task-status#draft
* http://hl7.org/fhir/task-status#requested
* http://hl7.org/fhir/task-status#received
* http://hl7.org/fhir/task-status#accepted
* http://hl7.org/fhir/task-status#rejected
* http://hl7.org/fhir/task-status#cancelled
* http://hl7.org/fhir/task-status#in-progress
* http://hl7.org/fhir/task-status#on-hold
* http://hl7.org/fhir/task-status#failed
* http://hl7.org/fhir/task-status#completed
* http://hl7.org/fhir/task-status#entered-in-error

ValueSet: MecrCoachingSessionClassVS
Id: coaching-session-class
Title: "mECR Coaching Session Class"
Description: "Encounter classes of a coaching session: AMB when in person, VR (virtual) for video and audio-only sessions."
* ^status = #active
* ^experimental = false
* $v3-ActCode#AMB "ambulatory"
* $v3-ActCode#VR "virtual"

ValueSet: MecrSessionModalityVS
Id: session-modality
Title: "mECR Coaching Session Modality"
Description: "In person, video or audio only."
* ^status = #active
* ^experimental = false
* include codes from system MecrSessionModality

ValueSet: MecrCoachingSessionTypeVS
Id: coaching-session-type
Title: "mECR Coaching Session Type"
Description: "Initial, follow-up or group coaching session."
* ^status = #active
* ^experimental = false
* MecrCodes#coaching-session-initial
* MecrCodes#coaching-session-follow-up
* MecrCodes#coaching-session-group

ValueSet: MecrCoachCredentialVS
Id: coach-credential
Title: "mECR Coach Credential"
Description: "Coaching certifications."
* ^status = #active
* ^experimental = false
* include codes from system MecrCoachCredential

ValueSet: MecrIdentifierSourceVS
Id: identifier-source
Title: "mECR Identifier Source"
Description: "Who set an identifier that mECR may link records by."
* ^status = #active
* ^experimental = false
* include codes from system MecrIdentifierSource
