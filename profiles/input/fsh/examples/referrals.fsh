Instance: example-referral-food
InstanceOf: MecrCommunityReferral
Title: "Example community referral to a food bank"
Description: "The coach refers the person to a food bank's pantry-application help; modelled on the Gravity SDOH food-pantry referral example."
Usage: #example
* extension[pertainsToGoal].valueReference = Reference(example-goal-steps)
* status = #active
* intent = #order
* category[0] = $sct#410606002 "Social service procedure"
* category[sdoh] = $sdohcc-temp#food-insecurity "Food Insecurity"
* code = $sct#467771000124109 "Assistance with application for food pantry program"
* subject = Reference(example-patient)
* authoredOn = "2026-03-10T14:05:00-05:00"
* requester = Reference(example-coach)
* performer = Reference(example-food-bank)
* reasonReference = Reference(example-food-insecurity)

Instance: example-referral-task-accepted
InstanceOf: MecrReferralTask
Title: "Example referral Task, accepted"
Description: "The food bank accepted the referral."
Usage: #example
* status = #accepted
* intent = #order
* code = $task-code#fulfill "Fulfill the focal request"
* focus = Reference(example-referral-food)
* for = Reference(example-patient)
* authoredOn = "2026-03-10T14:05:00-05:00"
* lastModified = "2026-03-11T09:30:00-05:00"
* requester = Reference(example-coach)
* owner = Reference(example-food-bank)

Instance: example-referral-task-completed
InstanceOf: MecrReferralTask
Title: "Example referral Task, completed"
Description: "The food bank helped the person apply and reported the Procedure as output."
Usage: #example
* status = #completed
* intent = #order
* code = $task-code#fulfill "Fulfill the focal request"
* focus = Reference(example-referral-food)
* for = Reference(example-patient)
* authoredOn = "2026-03-10T14:05:00-05:00"
* lastModified = "2026-03-18T15:00:00-05:00"
* requester = Reference(example-coach)
* owner = Reference(example-food-bank)
* output[PerformedActivityReference].type = $sdohcc-temp#resulting-activity "Resulting Activity"
* output[PerformedActivityReference].valueReference = Reference(example-food-pantry-assistance)
