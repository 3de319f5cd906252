"""RFC 5905 NTP: packet codec, client and server. Protocol and math only."""

from skewlab.ntp.client import NtpClient, NtpError
from skewlab.ntp.packet import NtpDecodeError, NtpPacket
from skewlab.ntp.sample import NtpSample
from skewlab.ntp.server import NtpServer

__all__ = ["NtpClient", "NtpDecodeError", "NtpError", "NtpPacket", "NtpSample", "NtpServer"]
