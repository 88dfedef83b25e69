"""speechunits: speech to discrete units, unit quality metrics, unit LMs and vocoders.

Data flows one way: audio -> features -> units -> tokens -> models -> scores.
Each stage is a subpackage that imports only the stages before it.
"""

__version__ = "0.1.0"
