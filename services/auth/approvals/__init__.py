"""The citizen's approvals: the encrypted queue of prompts and the device-signed decisions on them."""
