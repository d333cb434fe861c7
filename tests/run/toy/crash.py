"""A service that crashes with exit code 3: at once, or after serving /health for a while."""

import http.server
import os
import sys
import threading
import time

print("toy crash: starting", flush=True)
after = float(os.environ.get("TOY_CRASH_AFTER", "0"))
if after:
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    time.sleep(after)
print("toy crash: something went wrong", flush=True)
sys.exit(3)
