"""Method adapters, one small file each, registered by name in ``fsmi_bench/run/method.py``.

Reference methods that need no weights (so the whole pipeline runs anywhere and every table has a floor):
``identity.py``, ``copy_paste.py``, ``inpaint.py``. Adapters of published methods sit beside them.
Nothing here is imported by ``fsmi_bench`` until a method is used.
"""
