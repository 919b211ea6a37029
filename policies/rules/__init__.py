"""The pack's rules, one module per domain; each exports `POLICIES`."""
