"""Second-factor verification: TOTP, recovery codes, the per-teammate throttle."""
