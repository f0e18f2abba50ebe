// mECR code systems. Codes here exist because no published code system has the concept; where LOINC,
// SNOMED CT or an HL7 IG has one, the profiles use that instead.

CodeSystem: MecrCodes
Id: mecr-codes
Title: "mECR Codes"
Description: "Concepts mECR needs that have no code in LOINC, SNOMED CT or an HL7 implementation guide: habit check-ins, coaching plan and session kinds, the coach role."
* ^status = #active
* ^caseSensitive = true
* ^experimental = false
* #habit-check-in "Habit check-in" "A person's report of whether they did one habit of their habit plan on one day."
* #habit-check-in-amount "Habit check-in amount" "How much of a habit was done on the day of a check-in (glasses of water, minutes of walking...)."
* #habit-plan "Habit plan" "A care plan whose activities are the habits a person is building with a coach."
* #coaching-session-initial "Initial coaching session" "First health and well-being coaching session with a person: assessment and goal setting (billed as CPT 0591T where covered)."
* #coaching-session-follow-up "Follow-up coaching session" "Individual health and well-being coaching follow-up session (billed as CPT 0592T where covered)."
* #coaching-session-group "Group coaching session" "Health and well-being coaching with two or more people (billed per participant as CPT 0593T where covered)."
* #health-and-wellness-coach "Health and wellness coach" "A person who coaches others through behaviour change toward their own health and well-being goals."

CodeSystem: MecrCoachingGoalCategory
Id: coaching-goal-category
Title: "mECR Coaching Goal Category"
Description: "The life domain a coaching goal belongs to, as health and wellness coaches group goals."
* ^status = #active
* ^caseSensitive = true
* ^experimental = false
* #physical-activity "Physical activity" "Moving more: steps, exercise minutes, strength or mobility work."
* #nutrition "Nutrition" "What, when and how much a person eats and drinks."
* #sleep "Sleep" "Sleep duration, regularity and quality."
* #stress-management "Stress management" "Practices that lower or help a person cope with stress."
* #weight-management "Weight management" "Reaching or keeping a body weight the person chooses."
* #tobacco-cessation "Tobacco and nicotine cessation" "Stopping or cutting down tobacco or nicotine use."
* #alcohol-reduction "Alcohol reduction" "Drinking less alcohol or not at all."
* #medication-adherence "Medication adherence" "Taking medicines as agreed with the prescriber."
* #chronic-condition-self-management "Chronic condition self-management" "Day-to-day management of a long-term condition (blood pressure, glucose, pain)."
* #emotional-wellbeing "Emotional well-being" "Mood, mindfulness, resilience and mental well-being."
* #social-connection "Social connection" "Relationships, belonging and support."
* #life-purpose "Purpose and meaning" "Work, learning, values and what matters to the person."

CodeSystem: MecrHabitCheckInResult
Id: habit-check-in-result
Title: "mECR Habit Check-in Result"
Description: "Whether a person did a habit on the day of a check-in."
* ^status = #active
* ^caseSensitive = true
* ^experimental = false
* #done "Done" "The habit was done as planned."
* #partly "Partly done" "Some of the habit was done, less than planned."
* #not-done "Not done" "The habit was not done that day."

CodeSystem: MecrHabitPauseReason
Id: habit-pause-reason
Title: "mECR Habit Pause Reason"
Description: "Why a habit of a habit plan is on hold."
* ^status = #active
* ^caseSensitive = true
* ^experimental = false
* #illness "Illness" "The person is ill."
* #injury "Injury" "The person is injured."
* #travel "Travel" "The person is travelling and cannot keep the habit."
* #life-event "Life event" "A life event (move, new baby, bereavement) takes priority."
* #person-request "Person's request" "The person asked to pause the habit."
* #coach-recommendation "Coach recommendation" "The coach and person agreed to pause it, for example to focus on another habit."
* #other "Other" "Another reason, given in text."

CodeSystem: MecrSessionModality
Id: session-modality
Title: "mECR Coaching Session Modality"
Description: "How a coaching session was held."
* ^status = #active
* ^caseSensitive = true
* ^experimental = false
* #in-person "In person" "Coach and person in the same room."
* #video "Video" "Real-time audio and video (telehealth modifier 95 where billed)."
* #audio-only "Audio only" "Real-time audio without video, such as a phone call (telehealth modifier 93 where billed)."

CodeSystem: MecrCoachCredential
Id: coach-credential
Title: "mECR Coach Credential"
Description: "Certifications held by health and wellness coaches. NBC-HWC, CHES and MCHES are the certifications AMA and NBHWC named for the coaching CPT codes 0591T-0593T."
* ^status = #active
* ^caseSensitive = true
* ^experimental = false
* #nbc-hwc "National Board Certified Health & Wellness Coach (NBC-HWC)" "Certified by the National Board for Health & Wellness Coaching (NBHWC)."
* #ches "Certified Health Education Specialist (CHES)" "Certified by the National Commission for Health Education Credentialing (NCHEC)."
* #mches "Master Certified Health Education Specialist (MCHES)" "Advanced certification by the National Commission for Health Education Credentialing (NCHEC)."
* #hwnc-bc "Health and Wellness Nurse Coach, Board Certified (HWNC-BC)" "Nurse coach certification by the American Holistic Nurses Credentialing Corporation (AHNCC)."
* #other "Other coaching credential" "Another coaching certification, named in text."

CodeSystem: MecrIdentifierSource
Id: identifier-source
Title: "mECR Identifier Source"
Description: "Who set an identifier on an mECR record. mECR links a record to the EHR's (at a SMART launch, by sync) only by identifiers the EHR or mECR itself set: an identifier a person typed never links anyone, so it cannot be used to capture another person's record."
* ^status = #active
* ^caseSensitive = true
* ^experimental = false
* #ehr "Set by the EHR" "Copied from the EHR's own record of the person, at a launch or by sync."
* #mecr "Set by mECR" "Set by mECR's own loaders (for example the demo data or an administrator's import)."
