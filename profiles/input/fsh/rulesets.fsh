// Rule sets shared by the Observation profiles. The category and code slicing follow the FHIR R4
// vital-signs profile (http://hl7.org/fhir/StructureDefinition/vitalsigns): discriminators
// value:coding.code + value:coding.system on category, value:code + value:system on code.coding, open
// and unordered, with system and code fixed (not patterned) in each slice.

RuleSet: CategorySlicing
* category ^slicing.discriminator[0].type = #value
* category ^slicing.discriminator[0].path = "coding.code"
* category ^slicing.discriminator[1].type = #value
* category ^slicing.discriminator[1].path = "coding.system"
* category ^slicing.ordered = false
* category ^slicing.rules = #open
* category MS

RuleSet: CategorySliceRules(slice, system, code)
* category[{slice}].coding 1..* MS
* category[{slice}].coding.system 1..1 MS
* category[{slice}].coding.system = "{system}" (exactly)
* category[{slice}].coding.code 1..1 MS
* category[{slice}].coding.code = #{code} (exactly)

RuleSet: ActivityCategory
* insert CategorySlicing
* category contains activity 1..1 MS
* category[activity] ^short = "Activity: observation-category#activity"
* insert CategorySliceRules(activity, http://terminology.hl7.org/CodeSystem/observation-category, activity)

RuleSet: PhysicalActivityCategory
// Physical Activity IG pa-observation-base: category slices activity and PhysicalActivity, both required.
* insert CategorySlicing
* category contains activity 1..1 MS and PhysicalActivity 1..1 MS
* category[activity] ^short = "Activity: observation-category#activity"
* category[PhysicalActivity] ^short = "Physical Activity IG category: pa-temporary-codes#PhysicalActivity"
* insert CategorySliceRules(activity, http://terminology.hl7.org/CodeSystem/observation-category, activity)
* insert CategorySliceRules(PhysicalActivity, http://hl7.org/fhir/us/physical-activity/CodeSystem/pa-temporary-codes, PhysicalActivity)

RuleSet: LoincCodeSlice(slice, code)
* code MS
* code.coding ^slicing.discriminator[0].type = #value
* code.coding ^slicing.discriminator[0].path = "code"
* code.coding ^slicing.discriminator[1].type = #value
* code.coding ^slicing.discriminator[1].path = "system"
* code.coding ^slicing.ordered = false
* code.coding ^slicing.rules = #open
* code.coding MS
* code.coding contains {slice} 1..1 MS
* code.coding[{slice}].system 1..1 MS
* code.coding[{slice}].system = "http://loinc.org" (exactly)
* code.coding[{slice}].code 1..1 MS
* code.coding[{slice}].code = #{code} (exactly)

RuleSet: UcumQuantityValue
* value[x] 1..1 MS
* value[x] only Quantity
* valueQuantity.value 1..1 MS
* valueQuantity.unit 1..1 MS
* valueQuantity.system 1..1 MS
* valueQuantity.system = "http://unitsofmeasure.org" (exactly)
* valueQuantity.code 1..1 MS

RuleSet: UcumUnit(unit)
* insert UcumQuantityValue
* valueQuantity.code = #{unit} (exactly)

RuleSet: WearableReading
// Rules every wearable reading follows on top of its base profile.
* status MS
* status from MecrObservationStatusVS (required)
* subject 1..1 MS
* subject only Reference(Patient)
* effective[x] 1..1 MS
* device MS
* device only Reference(Device)
* device ^short = "The Device (wearable, phone, scale, cuff) that measured the value"
* meta.source MS
* meta.source ^short = "The system or app the reading was imported from, when no Device is recorded"
* obeys mecr-obs-source
