"""The part of a test service config the web, reload, disk-full and follow-focus tests share:
the simulated 320x240 source at 30 fps, Laplacian-only analysis and the simulated lens without
a state file.  Each test file appends the sections it is about (``[web]`` mostly)."""

SIM_SERVICE_BASE = """\
[source]
name = "sim"
width = 320
height = 240
realtime = true
fps = 30

[analysis]
use_cnn = false

[drive]
name = "sim"
state_file = "none"

"""
