#!/usr/bin/python3
"""A small model server: a regression model in PyTorch, served over HTTP.

Run as a Berth service (examples/serve/service.yaml): each replica listens on the port the
service gives it (PORT), trains its model at start from a fixed seed (or loads --model, a file
that --save-model wrote), and then answers:

  GET  /healthz  "ok" once the model is ready (the service's health check)
  POST /predict  {"inputs": [[8 numbers], ...]} (at most 1,024 rows) -> {"outputs": [...],
                 "replica": PID}; a malformed request is a 400 naming what is wrong

With a PyTorch that sees a GPU (torch.cuda.is_available()) the model runs there; --device cpu
keeps it on the CPU.
"""
import argparse
import http.server
import json
import os
import sys

import torch

FEATURES = 8
MAX_BODY = 256 * 1024
MAX_ROWS = 1024


def train(steps):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    true_w = torch.arange(1.0, FEATURES + 1) / FEATURES
    data = torch.Generator().manual_seed(1000)
    for _ in range(steps):
        x = torch.randn(64, FEATURES, generator=data)
        loss = torch.nn.functional.mse_loss(model(x).squeeze(1), x @ true_w)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


class Handler(http.server.BaseHTTPRequestHandler):
    model = None
    device = torch.device("cpu")

    def answer(self, status, body):
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if not isinstance(body, bytes)
                         else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def fail(self, status, message):
        self.answer(status, {"error": message})

    def do_GET(self):
        if self.path == "/healthz":
            self.answer(200, b"ok")
        else:
            self.fail(404, f"no {self.path}: POST /predict or GET /healthz")

    def do_POST(self):
        if self.path != "/predict":
            self.fail(404, f"no {self.path}: POST /predict or GET /healthz")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.fail(411, "a Content-Length is required")
            return
        if length < 0 or length > MAX_BODY:
            self.fail(413, f"body: at most {MAX_BODY} bytes")
            return
        try:
            request = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError) as e:
            self.fail(400, f"body: not JSON: {e}")
            return
        rows = request.get("inputs") if isinstance(request, dict) else None
        if not isinstance(rows, list) or not 1 <= len(rows) <= MAX_ROWS:
            self.fail(400, f"inputs: a list of 1 to {MAX_ROWS} rows is required")
            return
        for i, row in enumerate(rows):
            if (not isinstance(row, list) or len(row) != FEATURES or
                    not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row)):
                self.fail(400, f"inputs[{i}]: must be a list of {FEATURES} numbers")
                return
        with torch.no_grad():
            inputs = torch.tensor(rows, dtype=torch.float32).to(self.device)
            outputs = self.model(inputs).squeeze(1).cpu().tolist()
        self.answer(200, {"outputs": outputs, "replica": os.getpid()})

    def log_message(self, fmt, *args):
        pass  # one line per request would flood the replica's log


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--model", default="", help="load the weights --save-model wrote")
    parser.add_argument("--save-model", default="", help="train, write the weights here, exit")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto: a GPU when PyTorch sees one, else the CPU")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.model:
        model = torch.nn.Sequential(
            torch.nn.Linear(FEATURES, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        model.load_state_dict(torch.load(args.model, map_location="cpu"))
    else:
        model = train(args.train_steps)
    if args.save_model:
        torch.save(model.state_dict(), args.save_model)
        return
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    Handler.device = torch.device("cuda" if cuda else "cpu")
    model.to(Handler.device).eval()
    Handler.model = model
    server = http.server.ThreadingHTTPServer((args.address, args.port), Handler)
    server.daemon_threads = True
    print(f"serving on {args.address}:{args.port}, the model on {Handler.device}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
