"""Names vulture cannot see used: the interpreter, a framework or another program calls or reads them.

vulture (configured in pyproject.toml's [tool.vulture]) counts a name as used wherever it appears,
so each line below keeps every definition of that name alive. Never executed. Add a name here only
with what uses it; anything else vulture reports is dead code to delete.
"""

_ = object  # the receiver is irrelevant: vulture matches names only

# Python itself: a module-level __getattr__ (PEP 562) loads duplex.envs' and duplex.models' parts lazily
_.__getattr__

# pytest: module marks, hooks in conftest.py, and autouse fixtures no test names
_.pytestmark
_.pytest_configure
_.pytest_report_header
_._nvml_library  # tests/checks/conftest.py
_.stopped_after  # tests/run/test_moshi_chain.py
_.no_hang  # tests/run/test_supervisor.py
_.signal_handlers_restored  # tests/run/test_supervisor.py
_.no_real_engine  # tests/run/inprocess.py, imported by the in-process runtime tests
_.ssh_config  # tests/remote/conftest.py: every remote test's ssh client config
_.no_leftovers  # tests/conftest.py: an ended test session's containers removed first

# http.server: the test servers' handlers (do_*, log_message) and the attributes the server reads
_.do_HEAD
_.do_POST
_.log_message
_.daemon_threads
_.protocol_version
_.close_connection

# html.parser.HTMLParser calls these (duplex/vendor/index.py reads a simple-API page)
_.handle_starttag
_.handle_data
_.handle_endtag

# pydantic reads a model's configuration (duplex/stack.py, servers/mt/app.py)
_.model_config

# PyYAML's Dumper asks it (duplex/publish/write.py: no &anchors in published files)
_.ignore_aliases

# uvicorn's Server loop reads it (duplex/standalone/warm/warm_server.py stops the server with it)
_.should_exit

# written into `inv vendor-moshi --check --json` by dataclasses.asdict (duplex/vendor/reports.py)
_.actual_tree

# the vendored moshi server imports it (third_party/moshi/moshi/server.py, patches/moshi/0002-origin-check)
_.aiohttp_middleware

# read by libraries the tests drive: Selenium's Chrome options, the tokenizers library
_.binary_location
_.pre_tokenizer

# stack.Budget's keys: read by name (ramp.BOUNDS) from the budget's model_dump
_.final_p95
_.final_p50
_.turnaround_p95
_.lag_p95
