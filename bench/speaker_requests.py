"""The speaker's held-out test requests: what residents say to a kitchen speaker.

Written for the speaker benchmarks (2026-12-07), after the recognisers' prompt and
language model were fixed, and never used to tune them: bench/speaker_engines.py
and bench/speaker.py check that none is an NLU training sentence (pocketsphinx's
domain language model is generated from those) and drop any that is. Tuning used
bench/speech.py's requests (the development set).

Written the way people speak to a speaker, numbers as words, covering the
speaker's intents: balance, due date, usage, explanation, paying (with amounts
and methods), confirming yes / no, the link code, PIN digits, unpairing, help.
"""

from __future__ import annotations

#: (request, what it is for) -- the label is for reading the results, not scored.
REQUESTS: list[tuple[str, str]] = [
    # balance
    ("how much do i owe right now", "balance"),
    ("what's my balance today", "balance"),
    ("what is the total i owe", "balance"),
    ("how much is my water bill this month", "balance"),
    ("how much do i have to pay for gas", "balance"),
    ("tell me my electricity balance", "balance"),
    ("what do we owe for the property fee", "balance"),
    ("is there anything left to pay", "balance"),
    ("do we have any bills open", "balance"),
    ("read me my bills", "balance"),
    ("how much is outstanding", "balance"),
    ("what's the amount on my power bill", "balance"),
    # due date
    ("when do i have to pay the water bill", "due"),
    ("when is my gas bill due", "due"),
    ("what's the deadline for the electricity bill", "due"),
    ("when is the property fee due this month", "due"),
    ("is anything due this week", "due"),
    ("when's the next bill due", "due"),
    ("is the water bill late", "due"),
    ("how many days until the gas bill is due", "due"),
    ("did i miss any due dates", "due"),
    ("what day is the electricity due", "due"),
    # usage
    ("how much water did we use this month", "usage"),
    ("how much electricity did we use last month", "usage"),
    ("what was my gas usage in november", "usage"),
    ("are we using more power than last month", "usage"),
    ("how many units of electricity did i use", "usage"),
    ("tell me my water consumption", "usage"),
    ("how much gas have we used so far", "usage"),
    ("compare this month's water with last month", "usage"),
    ("what's my daily electricity use", "usage"),
    ("did our gas use go down", "usage"),
    # explain
    ("why is the water bill so expensive", "explain"),
    ("why is my gas bill higher this month", "explain"),
    ("explain the electricity bill to me", "explain"),
    ("what am i paying for on the property fee", "explain"),
    ("why did the electricity go up so much", "explain"),
    ("what makes up my water bill", "explain"),
    ("break down the gas bill for me", "explain"),
    ("why is this bill bigger than usual", "explain"),
    ("what is this extra charge on my bill", "explain"),
    ("why do i pay a service charge", "explain"),
    # pay
    ("pay the gas bill", "pay"),
    ("pay my property fee", "pay"),
    ("i'd like to pay the water bill", "pay"),
    ("please pay the electricity", "pay"),
    ("pay sixty yuan for water", "pay"),
    ("pay one hundred twenty yuan for electricity", "pay"),
    ("pay ninety five yuan for gas", "pay"),
    ("pay two hundred fifty yuan for the property fee", "pay"),
    ("pay thirty yuan and fifty fen for water", "pay"),
    ("pay the water bill with alipay", "pay"),
    ("pay the gas bill with wechat pay", "pay"),
    ("pay the electricity bill by card", "pay"),
    ("pay everything i owe", "pay"),
    ("settle all my bills", "pay"),
    ("pay the property fee from my wallet", "pay"),
    ("can you pay my gas bill please", "pay"),
    ("pay seventy five yuan for electricity with alipay", "pay"),
    ("pay my water and gas bills", "pay"),
    # confirm yes / no
    ("yes pay that one", "confirm"),
    ("yes go ahead and pay", "confirm"),
    ("yes that's right", "confirm"),
    ("sure do it", "confirm"),
    ("okay pay it now", "confirm"),
    ("yes please", "confirm"),
    ("i confirm the payment", "confirm"),
    ("no don't pay it yet", "deny"),
    ("no not today", "deny"),
    ("no stop", "deny"),
    ("no that's wrong", "deny"),
    ("don't do that", "deny"),
    ("cancel that", "deny"),
    ("never mind then", "deny"),
    # link code
    ("my link code is four seven one nine two six", "link"),
    ("the code is eight three five zero one two", "link"),
    ("link code nine one four four seven three", "link"),
    ("my code is two zero six eight five one", "link"),
    ("here is my link code three three nine one zero eight", "link"),
    ("pair this speaker", "link"),
    ("connect this speaker to my flat", "link"),
    ("link this speaker to my account", "link"),
    # PIN digits
    ("five two nine one eight zero", "pin"),
    ("one three three seven four six", "pin"),
    ("zero eight two five nine one", "pin"),
    ("seven seven four two one five", "pin"),
    ("my pin is six one zero three eight four", "pin"),
    ("four nine two six", "pin"),
    ("the pin is three five eight one", "pin"),
    ("nine zero one four two seven", "pin"),
    # unpair
    ("remove the kitchen speaker", "unpair"),
    ("unpair this speaker", "unpair"),
    ("disconnect this speaker", "unpair"),
    ("forget this device", "unpair"),
    ("remove this speaker from my account", "unpair"),
    ("stop this speaker from reading my bills", "unpair"),
    # help
    ("what things can i ask you", "help"),
    ("how does this work", "help"),
    ("what can you help us with", "help"),
    ("help me please", "help"),
    ("what are my options here", "help"),
    ("i need some help", "help"),
    ("what do i say", "help"),
    ("how do i pay a bill with you", "help"),
    # other things residents say
    ("send me the receipt for the water bill", "receipt"),
    ("show what i paid last month", "history"),
    ("turn on automatic payment for gas", "autopay"),
    ("i'd like to talk to someone", "handoff"),
    ("the electricity meter reads four five six seven", "reading"),
    ("good evening speaker", "greet"),
    ("thanks that's all", "thank"),
    ("bye for now", "goodbye"),
]
