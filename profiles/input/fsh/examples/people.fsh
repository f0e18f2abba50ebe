// Supporting example resources (not profiled by mECR) that the profile examples point at.

Instance: example-patient
InstanceOf: Patient
Title: "Example person being coached"
Description: "A person working with a health coach."
Usage: #example
* identifier.system = "https://mecr.dev/fhir/sid/example-mrn"
* identifier.value = "MRN-20451"
* name.family = "Rivera"
* name.given = "Ana"
* gender = #female
* birthDate = "1978-04-12"

Instance: example-practitioner-coach
InstanceOf: Practitioner
Title: "Example coach (person)"
Description: "The person who works as a health and wellness coach."
Usage: #example
* name.family = "Okafor"
* name.given = "Grace"
* identifier.system = $npi
* identifier.value = "1234567893"

Instance: example-practitioner-physician
InstanceOf: Practitioner
Title: "Example physician"
Description: "The primary care physician who supervises coaching."
Usage: #example
* name.family = "Chen"
* name.given = "David"
* name.prefix = "Dr"

Instance: example-clinic
InstanceOf: Organization
Title: "Example clinic"
Description: "The medical practice where the coach works."
Usage: #example
* active = true
* name = "Riverside Family Medicine"

Instance: example-food-bank
InstanceOf: Organization
Title: "Example community organization"
Description: "A community food bank that takes referrals."
Usage: #example
* active = true
* name = "Eastside Community Food Bank"

Instance: example-credentialing-board
InstanceOf: Organization
Title: "Example credentialing board"
Description: "The board that certified the coach."
Usage: #example
* active = true
* name = "National Board for Health & Wellness Coaching"

Instance: example-wrist-tracker
InstanceOf: Device
Title: "Example wrist-worn activity tracker"
Description: "The person's activity tracker, source of the wearable examples."
Usage: #example
* status = #active
* manufacturer = "Example Wearables Inc."
* deviceName.name = "Example Band 5"
* deviceName.type = #model-name
* patient = Reference(example-patient)

Instance: example-bp-cuff
InstanceOf: Device
Title: "Example home blood pressure cuff"
Description: "An upper-arm cuff the person uses at home."
Usage: #example
* status = #active
* manufacturer = "Example Medical"
* deviceName.name = "Example BP Monitor 7"
* deviceName.type = #model-name
* patient = Reference(example-patient)

Instance: example-food-insecurity
InstanceOf: Condition
Title: "Example food insecurity condition"
Description: "The social need the food referral addresses."
Usage: #example
* clinicalStatus = http://terminology.hl7.org/CodeSystem/condition-clinical#active
* verificationStatus = http://terminology.hl7.org/CodeSystem/condition-ver-status#confirmed
* category = $sdohcc-temp#food-insecurity "Food Insecurity"
* code = $sct#733423003 "Food insecurity"
* subject = Reference(example-patient)

Instance: example-food-pantry-assistance
InstanceOf: Procedure
Title: "Example food pantry assistance"
Description: "What the food bank did for the person: the output of the completed referral Task."
Usage: #example
* status = #completed
* code = $sct#467771000124109 "Assistance with application for food pantry program"
* subject = Reference(example-patient)
* performedDateTime = "2026-03-18"
