"""OSDP card readers (IEC 60839-11-5) through libosdp, with the gateway as control panel.

``config.py`` the ``type: osdp`` block; ``channel.py`` the serial / TCP line,
which never raises into libosdp; ``liblog.py`` libosdp's log into Python
logging; ``panel.py`` libosdp's refresh thread bridged to asyncio, with
``messages.py`` (what thread and loop tell each other) and ``commands.py``
(one command per reader at a time, deadlines, flushes); ``translate.py``
reader events to gateway events and decisions to OSDP commands;
``driver.py`` the driver; ``simulator.py`` and ``simlines.py`` libosdp
readers on a pty or TCP, for tests, the demo and the benchmark. See README.md.
"""
