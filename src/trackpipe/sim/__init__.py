"""Event simulation: the REDVID-like toy detector and the TrackML-like fast simulation.

Every function here takes plain arguments or a plain config dict (documented keys, defaults in the
module's `DEFAULT_*` dicts) and a seed; nothing reads config files. Same config + seed -> same events.
"""
