"""Citizen identity: enrolment at a kiosk (card number, selfie proofing), activation codes, account states."""
