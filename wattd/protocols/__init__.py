"""Pure (sans-I/O) meter protocol decoders: bytes and arrival times in,
measurements and counted errors out. No asyncio, no serial, no clock."""
