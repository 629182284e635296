"""Start the moto server (moto's own ThreadedMotoServer, the server behind
`python3 -m moto.server`) on a free loopback port, print the port, and stop
when standard input closes, so that the server dies with the test process
that started it, however that process ends."""
import os
import socket
import sys

from moto.server import ThreadedMotoServer

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
sock.close()
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
print(port, flush=True)
sys.stdin.read()
os._exit(0)
