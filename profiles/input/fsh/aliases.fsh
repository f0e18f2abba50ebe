// Code systems and canonical URLs used across the mECR FSH sources.
Alias: $loinc = http://loinc.org
Alias: $sct = http://snomed.info/sct
Alias: $ucum = http://unitsofmeasure.org
Alias: $obs-category = http://terminology.hl7.org/CodeSystem/observation-category
Alias: $pa-temp = http://hl7.org/fhir/us/physical-activity/CodeSystem/pa-temporary-codes
Alias: $sdohcc-temp = http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes
Alias: $task-code = http://hl7.org/fhir/CodeSystem/task-code
Alias: $v3-ActCode = http://terminology.hl7.org/CodeSystem/v3-ActCode
Alias: $v3-ParticipationType = http://terminology.hl7.org/CodeSystem/v3-ParticipationType
Alias: $v2-0203 = http://terminology.hl7.org/CodeSystem/v2-0203
Alias: $npi = http://hl7.org/fhir/sid/us-npi
Alias: $goal-achievement = http://terminology.hl7.org/CodeSystem/goal-achievement
Alias: $pertainsToGoal = http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal
