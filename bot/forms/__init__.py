"""Forms: multi-turn slot filling (the payment form, PIN set-up)."""
