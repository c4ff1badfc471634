"""The whole experiment from the command line (SPEC 9): ``wattd exec``
wrapping a load generator, and the marker address/secret resolution shared
with ``wattd probe``. Import-light: no yaml unless ``-c`` is given."""
