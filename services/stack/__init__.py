"""The composition root: builds the typed :class:`~aiots.services.common.runtime.Runtime` and runs
services (and the gateway) in one process. It sits above every service; nothing below imports it."""
