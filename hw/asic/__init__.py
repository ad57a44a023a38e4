"""An ASIC estimate of the RTL from Yosys alone: gate equivalents and logic depth."""
