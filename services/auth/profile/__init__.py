"""The citizen's own profile: contact details changed from the app (changes.py).

A new phone number or e-mail address is verified by a one-time code that
notify sends to the new address; an address is self-declared and applied at
once. auth keeps no personal data: the new value exists here only sealed to
formfill and to notify, which auth cannot open (docs/architecture.md,
*The citizen's own profile*).
"""
