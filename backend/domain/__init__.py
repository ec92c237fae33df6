"""The billing domain: pure Python rules, free of databases and web frameworks.

Each module is the one place its rule lives:

* :mod:`backend.domain.money` - parsing amounts and the rounding rule;
* :mod:`backend.domain.tariffs` - every piece of tariff arithmetic;
* :mod:`backend.domain.readings` - meter-reading validation;
* :mod:`backend.domain.bills` - bill status;
* :mod:`backend.domain.payments` - the payment state machine;
* :mod:`backend.domain.allocation` - which bills a payment pays, and the credit limit;
* :mod:`backend.domain.ledger` - balanced double-entry journal entries;
* :mod:`backend.domain.reminders` - the arrears-reminder schedule and late fees.
"""
