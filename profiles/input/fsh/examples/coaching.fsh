Instance: example-coach
InstanceOf: MecrCoach
Title: "Example coach role"
Description: "An NBC-HWC certified coach with an NPI, working at the clinic."
Usage: #example
* extension[credential].extension[code].valueCodeableConcept = MecrCoachCredential#nbc-hwc
* extension[credential].extension[identifier].valueIdentifier.value = "NBC-HWC-000123"
* extension[credential].extension[period].valuePeriod.start = "2024-02-01"
* extension[credential].extension[period].valuePeriod.end = "2027-01-31"
* extension[credential].extension[issuer].valueReference = Reference(example-credentialing-board)
* identifier[NPI].value = "1234567893"
* active = true
* practitioner = Reference(example-practitioner-coach)
* organization = Reference(example-clinic)
* code[coach] = MecrCodes#health-and-wellness-coach

Instance: example-goal-steps
InstanceOf: MecrCoachingGoal
Title: "Example goal: walk 8,000 steps a day"
Description: "A physical-activity goal with a LOINC step-count target, expressed by the person."
Usage: #example
* lifecycleStatus = #active
* achievementStatus = $goal-achievement#improving
* category[coaching] = MecrCoachingGoalCategory#physical-activity
* description.text = "Walk 8,000 steps most days so I can keep up with my grandchildren"
* subject = Reference(example-patient)
* startDate = "2026-03-02"
* target.measure = $loinc#41950-7 "Number of steps in 24 hour Measured"
* target.detailQuantity = 8000 '/d' "/d"
* target.dueDate = "2026-06-01"
* expressedBy = Reference(example-patient)
* addresses = Reference(example-food-insecurity)

Instance: example-goal-sleep
InstanceOf: MecrCoachingGoal
Title: "Example goal: sleep seven hours"
Description: "A sleep goal written down by the coach with the person."
Usage: #example
* lifecycleStatus = #active
* achievementStatus = $goal-achievement#in-progress
* category[coaching] = MecrCoachingGoalCategory#sleep
* description.text = "Sleep at least seven hours on work nights"
* subject = Reference(example-patient)
* startDate = "2026-03-02"
* target.measure = $loinc#93832-4 "Sleep duration"
* target.detailQuantity = 7 'h' "h"
* expressedBy = Reference(example-coach)

Instance: example-habit-plan
InstanceOf: MecrHabitPlan
Title: "Example habit plan"
Description: "Two habits: a walk after lunch on weekdays (active) and a screens-off bedtime routine, paused for illness earlier in March and paused again now, while travelling (an open habit-pause)."
Usage: #example
* status = #active
* intent = #plan
* category[habitPlan] = MecrCodes#habit-plan
* title = "Ana's habits, spring 2026"
* subject = Reference(example-patient)
* period.start = "2026-03-02"
* author = Reference(example-coach)
* goal[0] = Reference(example-goal-steps)
* goal[1] = Reference(example-goal-sleep)
* activity[0].extension[habitId].valueString = "walk-after-lunch"
* activity[0].detail.code.text = "Walk after lunch"
* activity[0].detail.description = "A 15-minute walk after lunch on weekdays"
* activity[0].detail.goal = Reference(example-goal-steps)
* activity[0].detail.status = #in-progress
* activity[0].detail.scheduledTiming.repeat.frequency = 1
* activity[0].detail.scheduledTiming.repeat.period = 1
* activity[0].detail.scheduledTiming.repeat.periodUnit = #d
* activity[0].detail.scheduledTiming.repeat.dayOfWeek[0] = #mon
* activity[0].detail.scheduledTiming.repeat.dayOfWeek[1] = #tue
* activity[0].detail.scheduledTiming.repeat.dayOfWeek[2] = #wed
* activity[0].detail.scheduledTiming.repeat.dayOfWeek[3] = #thu
* activity[0].detail.scheduledTiming.repeat.dayOfWeek[4] = #fri
* activity[0].detail.scheduledTiming.repeat.boundsPeriod.start = "2026-03-02"
* activity[0].detail.dailyAmount = 15 'min' "min"
* activity[1].extension[habitId].valueString = "screens-off-2200"
* activity[1].detail.code.text = "Screens off by 22:00"
* activity[1].detail.description = "Phone and TV off by 22:00 on work nights"
* activity[1].detail.goal = Reference(example-goal-sleep)
* activity[1].detail.status = #on-hold
* activity[1].detail.statusReason = MecrHabitPauseReason#travel
* activity[1].detail.scheduledTiming.repeat.frequency = 1
* activity[1].detail.scheduledTiming.repeat.period = 1
* activity[1].detail.scheduledTiming.repeat.periodUnit = #d
* activity[1].detail.scheduledTiming.repeat.timeOfDay = "22:00:00"
* activity[1].detail.scheduledTiming.repeat.boundsPeriod.start = "2026-03-02"
* activity[1].extension[pause][0].extension[period].valuePeriod.start = "2026-03-05"
* activity[1].extension[pause][0].extension[period].valuePeriod.end = "2026-03-08"
* activity[1].extension[pause][0].extension[reason].valueCodeableConcept = MecrHabitPauseReason#illness
* activity[1].extension[pause][1].extension[period].valuePeriod.start = "2026-03-16"
* activity[1].extension[pause][1].extension[reason].valueCodeableConcept = MecrHabitPauseReason#travel "Travel"
* activity[1].extension[pause][1].extension[reason].valueCodeableConcept.text = "Work trip to Denver"

Instance: example-check-in-done
InstanceOf: MecrHabitCheckIn
Title: "Example check-in: walked after lunch"
Description: "The person walked after lunch, 20 minutes, on 16 March 2026."
Usage: #example
* extension[habitId].valueString = "walk-after-lunch"
* status = #final
* code = MecrCodes#habit-check-in
* subject = Reference(example-patient)
* basedOn = Reference(example-habit-plan)
* focus = Reference(example-goal-steps)
* effectiveDateTime = "2026-03-16"
* performer = Reference(example-patient)
* valueCodeableConcept = MecrHabitCheckInResult#done
* component.code = MecrCodes#habit-check-in-amount
* component.valueQuantity = 20 'min' "min"
* note.text = "Went with a colleague, felt good"

Instance: example-check-in-partly
InstanceOf: MecrHabitCheckIn
Title: "Example check-in: partly done"
Description: "A shorter walk than planned on 17 March 2026."
Usage: #example
* extension[habitId].valueString = "walk-after-lunch"
* status = #final
* code = MecrCodes#habit-check-in
* subject = Reference(example-patient)
* basedOn = Reference(example-habit-plan)
* focus = Reference(example-goal-steps)
* effectiveDateTime = "2026-03-17"
* valueCodeableConcept = MecrHabitCheckInResult#partly
* note.text = "Raining; walked 5 minutes"

Instance: example-session-video
InstanceOf: MecrCoachingSession
Title: "Example follow-up session by video"
Description: "A 30-minute individual follow-up coaching session held by video."
Usage: #example
* extension[modality].valueCoding = MecrSessionModality#video
* status = #finished
* class = $v3-ActCode#VR "virtual"
* type = MecrCodes#coaching-session-follow-up
* subject = Reference(example-patient)
* participant[coach].type = $v3-ParticipationType#PPRF
* participant[coach].individual = Reference(example-coach)
* period.start = "2026-03-20T16:00:00-05:00"
* period.end = "2026-03-20T16:32:00-05:00"
* length = 32 'min' "min"
* serviceProvider = Reference(example-clinic)

Instance: example-walking-group
InstanceOf: Group
Title: "Example coaching group"
Description: "The people coached together in a group session."
Usage: #example
* type = #person
* actual = true
* name = "Tuesday walking group"
* member[0].entity = Reference(example-patient)
* member[1].entity = Reference(example-patient-ben)

Instance: example-patient-ben
InstanceOf: Patient
Title: "Example second member of a coaching group"
Description: "Another person in the walking group."
Usage: #example
* name.family = "Okafor"
* name.given = "Ben"

Instance: example-session-group
InstanceOf: MecrCoachingSession
Title: "Example group session"
Description: "The group-level Encounter of an in-person group coaching session at the clinic: its subject is the Group; each member's own session is partOf it."
Usage: #example
* extension[modality].valueCoding = MecrSessionModality#in-person
* status = #finished
* class = $v3-ActCode#AMB "ambulatory"
* type = MecrCodes#coaching-session-group
* subject = Reference(example-walking-group)
* participant[coach].type = $v3-ParticipationType#PPRF
* participant[coach].individual = Reference(example-coach)
* period.start = "2026-03-24T12:00:00-05:00"
* period.end = "2026-03-24T13:00:00-05:00"
* length = 60 'min' "min"
* serviceProvider = Reference(example-clinic)

Instance: example-session-group-participant
InstanceOf: MecrCoachingSession
Title: "Example participant's part of a group session"
Description: "The person's own record of the group session, part of the group Encounter (billed per participant)."
Usage: #example
* extension[modality].valueCoding = MecrSessionModality#in-person
* status = #finished
* class = $v3-ActCode#AMB "ambulatory"
* type = MecrCodes#coaching-session-group
* subject = Reference(example-patient)
* participant[coach].type = $v3-ParticipationType#PPRF
* participant[coach].individual = Reference(example-coach)
* period.start = "2026-03-24T12:00:00-05:00"
* period.end = "2026-03-24T13:00:00-05:00"
* partOf = Reference(example-session-group)

Instance: example-session-group-participant-ben
InstanceOf: MecrCoachingSession
Title: "Example second participant's part of a group session"
Description: "Ben's own record of the same group session."
Usage: #example
* extension[modality].valueCoding = MecrSessionModality#in-person
* status = #finished
* class = $v3-ActCode#AMB "ambulatory"
* type = MecrCodes#coaching-session-group
* subject = Reference(example-patient-ben)
* participant[coach].type = $v3-ParticipationType#PPRF
* participant[coach].individual = Reference(example-coach)
* period.start = "2026-03-24T12:00:00-05:00"
* period.end = "2026-03-24T13:00:00-05:00"
* partOf = Reference(example-session-group)
