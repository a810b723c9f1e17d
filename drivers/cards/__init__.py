"""Card readers, door controllers and ANPR cameras (access control inputs).

Each driver turns its protocol into the events of :mod:`drivers.cards.events`
and executes the commands described there; decisions are made in
``gateway/access/``.
"""
