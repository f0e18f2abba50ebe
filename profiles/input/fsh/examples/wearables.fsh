Instance: example-daily-steps
InstanceOf: MecrDailySteps
Title: "Example daily steps"
Description: "7,267 steps on 16 March 2026, from the wrist tracker."
Usage: #example
* status = #final
* category[activity] = $obs-category#activity
* category[PhysicalActivity] = $pa-temp#PhysicalActivity
* code.coding[StepsCode] = $loinc#41950-7 "Number of steps in 24 hour Measured"
* subject = Reference(example-patient)
* effectiveDateTime = "2026-03-16"
* valueQuantity = 7267 '/d' "steps/day"
* device = Reference(example-wrist-tracker)

Instance: example-heart-rate
InstanceOf: MecrHeartRate
Title: "Example heart rate"
Description: "A heart rate of 72/min, imported from a phone health app (meta.source)."
Usage: #example
* meta.source = "https://mecr.dev/fhir/sources/apple-health"
* status = #final
* category[VSCat] = $obs-category#vital-signs
* code.coding[HeartRateCode] = $loinc#8867-4 "Heart rate"
* subject = Reference(example-patient)
* effectiveDateTime = "2026-03-16T08:12:00-05:00"
* valueQuantity = 72 '/min' "beats/minute"

Instance: example-resting-heart-rate
InstanceOf: MecrRestingHeartRate
Title: "Example resting heart rate"
Description: "Resting heart rate 61/min for 16 March 2026."
Usage: #example
* status = #final
* category[activity] = $obs-category#activity
* category[PhysicalActivity] = $pa-temp#PhysicalActivity
* code.coding[RestingHeartRateCode] = $loinc#40443-4 "Heart rate --resting"
* subject = Reference(example-patient)
* effectiveDateTime = "2026-03-16"
* valueQuantity = 61 '/min' "beats/minute"
* device = Reference(example-wrist-tracker)

Instance: example-sleep-duration
InstanceOf: MecrSleepDuration
Title: "Example sleep duration"
Description: "6.6 hours asleep in the night to 17 March 2026."
Usage: #example
* status = #final
* category[activity] = $obs-category#activity
* code.coding[SleepDurationCode] = $loinc#93832-4 "Sleep duration"
* subject = Reference(example-patient)
* effectivePeriod.start = "2026-03-16T23:10:00-05:00"
* effectivePeriod.end = "2026-03-17T06:25:00-05:00"
* valueQuantity = 6.6 'h' "h"
* device = Reference(example-wrist-tracker)

Instance: example-active-energy
InstanceOf: MecrActiveEnergy
Title: "Example active energy"
Description: "412 kcal of active energy on 16 March 2026."
Usage: #example
* status = #final
* category[activity] = $obs-category#activity
* category[PhysicalActivity] = $pa-temp#PhysicalActivity
* code.coding[ActiveEnergyCode] = $loinc#41981-2 "Calories burned"
* subject = Reference(example-patient)
* effectiveDateTime = "2026-03-16"
* valueQuantity = 412 'kcal' "kcal"
* device = Reference(example-wrist-tracker)

Instance: example-mvpa-per-day
InstanceOf: MecrMvpaMinutesPerDay
Title: "Example MVPA minutes per day"
Description: "34 minutes of moderate to vigorous activity on 16 March 2026."
Usage: #example
* status = #final
* category[activity] = $obs-category#activity
* category[PhysicalActivity] = $pa-temp#PhysicalActivity
* code.coding[MvpaPerDayCode] = $loinc#68516-4
* subject = Reference(example-patient)
* effectiveDateTime = "2026-03-16"
* valueQuantity = 34 'min/d' "min/d"
* device = Reference(example-wrist-tracker)

Instance: example-mvpa-per-week
InstanceOf: MecrMvpaMinutesPerWeek
Title: "Example MVPA minutes per week"
Description: "140 minutes of moderate to vigorous activity in the week to 22 March 2026."
Usage: #example
* status = #final
* category[activity] = $obs-category#activity
* category[PhysicalActivity] = $pa-temp#PhysicalActivity
* code.coding[MvpaPerWeekCode] = $loinc#82290-8
* subject = Reference(example-patient)
* effectiveDateTime = "2026-03-22"
* valueQuantity = 140 'min/wk' "min/wk"
* device = Reference(example-wrist-tracker)

Instance: example-body-weight
InstanceOf: MecrBodyWeight
Title: "Example body weight"
Description: "81.4 kg from a connected scale, imported through its cloud service (meta.source)."
Usage: #example
* meta.source = "https://mecr.dev/fhir/sources/withings"
* status = #final
* category[VSCat] = $obs-category#vital-signs
* code.coding[BodyWeightCode] = $loinc#29463-7 "Body weight"
* subject = Reference(example-patient)
* effectiveDateTime = "2026-03-17T07:02:00-05:00"
* valueQuantity = 81.4 'kg' "kg"

Instance: example-blood-pressure
InstanceOf: MecrBloodPressure
Title: "Example blood pressure"
Description: "128/82 mm[Hg] from the home cuff."
Usage: #example
* status = #final
* category[VSCat] = $obs-category#vital-signs
* code.coding[BPCode] = $loinc#85354-9 "Blood pressure panel with all children optional"
* subject = Reference(example-patient)
* effectiveDateTime = "2026-03-17T07:05:00-05:00"
* component[SystolicBP].code.coding[SBPCode] = $loinc#8480-6 "Systolic blood pressure"
* component[SystolicBP].valueQuantity = 128 'mm[Hg]' "mmHg"
* component[DiastolicBP].code.coding[DBPCode] = $loinc#8462-4 "Diastolic blood pressure"
* component[DiastolicBP].valueQuantity = 82 'mm[Hg]' "mmHg"
* device = Reference(example-bp-cuff)
