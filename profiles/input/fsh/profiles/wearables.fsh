// Wearable and home-device readings. Codes and units follow the FHIR R4 vital-signs profiles and the HL7
// Physical Activity IG (STU1, http://hl7.org/fhir/us/physical-activity); codes and units: mappings/systems.py.

Profile: MecrDailySteps
Parent: Observation
Id: mecr-daily-steps
Title: "mECR Daily Steps"
Description: """
Steps walked in one day, as counted by a wearable or phone: LOINC 41950-7 "Number of steps in 24 hour
Measured", in UCUM `/d`.

Alignment: the Physical Activity IG's daily step count (pa-observation-time-measure, example
ExampleDailySteps): categories activity and PhysicalActivity, same code and unit, status restricted to
final, amended, corrected or entered-in-error. The category and code slicing is done as the FHIR
vital-signs profile does it. The device (or meta.source) is required, since step counts are not comparable
across devices.
"""
* ^status = #active
* ^experimental = false
* insert WearableReading
* insert PhysicalActivityCategory
* insert LoincCodeSlice(StepsCode, 41950-7)
* effective[x] only dateTime or Period
* obeys mecr-obs-day
* insert UcumUnit(/d)

Profile: MecrHeartRate
Parent: http://hl7.org/fhir/StructureDefinition/heartrate
Id: mecr-heart-rate
Title: "mECR Heart Rate"
Description: """
A heart rate reading from a wearable or device: LOINC 8867-4, UCUM `/min`.

Alignment: derived from the FHIR R4 heart rate vital-signs profile, so it keeps its category slice
(VSCat, vital-signs), its code slice (HeartRateCode, 8867-4) and its unit; adds the device/source rule.
"""
* ^status = #active
* ^experimental = false
* insert WearableReading

Profile: MecrRestingHeartRate
Parent: Observation
Id: mecr-resting-heart-rate
Title: "mECR Resting Heart Rate"
Description: """
A person's resting heart rate for a day, as a wearable estimates it: LOINC 40443-4 "Heart rate --resting",
UCUM `/min`.

Alignment: the Physical Activity IG's average resting heart rate measure (categories activity and
PhysicalActivity, code 40443-4, unit /min); slicing as in the FHIR vital-signs profile.
"""
* ^status = #active
* ^experimental = false
* insert WearableReading
* insert PhysicalActivityCategory
* insert LoincCodeSlice(RestingHeartRateCode, 40443-4)
* effective[x] only dateTime or Period
* obeys mecr-obs-day
* insert UcumUnit(/min)

Profile: MecrSleepDuration
Parent: Observation
Id: mecr-sleep-duration
Title: "mECR Sleep Duration"
Description: """
Time asleep in one sleep period (usually a night): LOINC 93832-4 "Sleep duration", in UCUM `h` or `min`.
Time in bed is not sleep: it is the sum of the asleep stages.

Alignment: code from the HL7 Personal Health Record IG's sleep observation codes; category activity; slicing
as in the FHIR vital-signs profile.
"""
* ^status = #active
* ^experimental = false
* insert WearableReading
* insert ActivityCategory
* insert LoincCodeSlice(SleepDurationCode, 93832-4)
* effective[x] only Period or dateTime
* effective[x] ^short = "The sleep period (bedtime start to end), or the day it is attributed to"
* insert UcumQuantityValue
* valueQuantity.code from MecrSleepDurationUnitsVS (required)

Profile: MecrActiveEnergy
Parent: Observation
Id: mecr-active-energy
Title: "mECR Active Energy Burned"
Description: """
Energy burned by activity (above resting) over a day or an activity: LOINC 41981-2 "Calories burned", UCUM
`kcal`.

Alignment: categories activity and PhysicalActivity as in the Physical Activity IG; code as used for
HealthKit ActiveEnergyBurned; slicing as in the FHIR vital-signs profile.
"""
* ^status = #active
* ^experimental = false
* insert WearableReading
* insert PhysicalActivityCategory
* insert LoincCodeSlice(ActiveEnergyCode, 41981-2)
* effective[x] only dateTime or Period
* obeys mecr-obs-day
* insert UcumUnit(kcal)

Profile: MecrMvpaMinutesPerDay
Parent: Observation
Id: mecr-mvpa-minutes-per-day
Title: "mECR Moderate-to-Vigorous Activity Minutes per Day"
Description: """
Minutes of moderate to vigorous physical activity per day: LOINC 68516-4, UCUM `min/d`.

Alignment: the Physical Activity IG's exercise vital sign profile pa-observation-evs-min-per-day (same
code, unit, categories activity and PhysicalActivity, effectiveDateTime only); slicing as in the FHIR
vital-signs profile.
"""
* ^status = #active
* ^experimental = false
* insert WearableReading
* insert PhysicalActivityCategory
* insert LoincCodeSlice(MvpaPerDayCode, 68516-4)
* effective[x] only dateTime
* insert UcumUnit(min/d)

Profile: MecrMvpaMinutesPerWeek
Parent: Observation
Id: mecr-mvpa-minutes-per-week
Title: "mECR Moderate-to-Vigorous Activity Minutes per Week"
Description: """
Minutes of moderate to vigorous physical activity per week: LOINC 82290-8, UCUM `min/wk` (the weekly 150
minutes of the physical activity guidelines).

Alignment: the Physical Activity IG's exercise vital sign profile pa-observation-evs-min-per-week (same
code, unit, categories activity and PhysicalActivity, effectiveDateTime only); slicing as in the FHIR
vital-signs profile.
"""
* ^status = #active
* ^experimental = false
* insert WearableReading
* insert PhysicalActivityCategory
* insert LoincCodeSlice(MvpaPerWeekCode, 82290-8)
* effective[x] only dateTime
* insert UcumUnit(min/wk)

Profile: MecrBodyWeight
Parent: http://hl7.org/fhir/StructureDefinition/bodyweight
Id: mecr-body-weight
Title: "mECR Body Weight"
Description: """
A body weight from a connected scale or entered by the person: LOINC 29463-7, UCUM `kg`, `g` or `[lb_av]`.

Alignment: derived from the FHIR R4 body weight vital-signs profile (category VSCat, code slice
BodyWeightCode, unit binding); adds the device/source rule.
"""
* ^status = #active
* ^experimental = false
* insert WearableReading

Profile: MecrBloodPressure
Parent: http://hl7.org/fhir/StructureDefinition/bp
Id: mecr-blood-pressure
Title: "mECR Blood Pressure"
Description: """
A blood pressure reading from a home cuff: panel LOINC 85354-9 with components systolic 8480-6 and
diastolic 8462-4 in `mm[Hg]`, no top-level value.

Alignment: derived from the FHIR R4 blood pressure vital-signs profile (category VSCat, code slice BPCode,
component slices SystolicBP and DiastolicBP); adds the device/source rule.
"""
* ^status = #active
* ^experimental = false
* insert WearableReading
