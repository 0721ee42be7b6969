"""Installs the test suite's network guard in every Python process a test starts (this folder is on ``PYTHONPATH``
during the tests; see ``tb_netguard``)."""

import tb_netguard

tb_netguard.install()
