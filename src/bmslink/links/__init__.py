"""The only code that touches hardware: serial ports (pyserial) and Modbus (pymodbus)."""
