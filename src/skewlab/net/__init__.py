"""The event wire format and the userspace link emulator."""
