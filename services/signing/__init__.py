"""The signing service: HSM-held citizen keys, the platform CA and TSA, CAdES and PAdES signing."""
