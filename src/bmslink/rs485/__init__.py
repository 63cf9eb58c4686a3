"""RS485 poll-response protocols that inverters speak to batteries: Pylontech ASCII, Modbus RTU."""
