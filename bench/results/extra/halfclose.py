import socket, base64, os, json, http.client, struct
c = http.client.HTTPConnection("127.0.0.1", 18080); c.request("POST", "/auth/login", json.dumps({"username":"alice","password":"alicepass"}), {"Content-Type":"application/json"})
tok = json.loads(c.getresponse().read())["data"]["accessToken"]
s = socket.create_connection(("127.0.0.1", 18080))
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(f"GET /ws/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n".encode())
def frame(p):
    m = os.urandom(4); p = p.encode(); return bytes([0x81, 0x80 | len(p)]) + m + bytes(b ^ m[i % 4] for i, b in enumerate(p)) if len(p) < 126 else bytes([0x81, 0xFE]) + struct.pack(">H", len(p)) + m + bytes(b ^ m[i % 4] for i, b in enumerate(p))
s.sendall(frame(f"CONNECT\naccept-version:1.2\nhost:x\nheart-beat:0,0\nAuthorization:Bearer {tok}\n\n\0"))
import time; time.sleep(0.3)
print("before half-close:", s.recv(65536)[-120:])
s.shutdown(socket.SHUT_WR)
time.sleep(0.3)
data = b""
while True:
    d = s.recv(65536)
    if not d: break
    data += d
print("after half-close (client sent FIN, no WebSocket close frame):", data)
