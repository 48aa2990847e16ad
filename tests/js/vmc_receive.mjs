// Independent VMC decoder for the tests: receives OSC over UDP with the npm `osc` package (osc.js) and
// prints what arrived as JSON on stdout.
//
//   node tests/js/vmc_receive.mjs PORT [IDLE_MS]
//
// Prints `{"ready": PORT}` on one line once listening, then, after IDLE_MS (default 1000) without a
// datagram (counted from the first one), one JSON line:
//   {"packets": [{"size": bytes, "bundle": true, "timeTag": {...},
//                 "messages": [{"address": "/VMC/Ext/Bone/Pos", "types": "sfffffff", "args": [...]}]}],
//    "errors": ["..."]}
// `types` are the OSC typetags as decoded by osc.js (metadata mode), so the test can check that every
// number went out as a float ("f") and not as an int ("i").
import osc from "osc";

const port = Number(process.argv[2]);
const idleMs = Number(process.argv[3] ?? 1000);
const packets = [];
const errors = [];
let lastSize = 0;
let timer = null;

function flatten(packet) {
  if (packet.packets) return packet.packets.flatMap(flatten);
  return [{
    address: packet.address,
    types: packet.args.map((a) => a.type).join(""),
    args: packet.args.map((a) => a.value),
  }];
}

let finished = false;
function finish() {
  if (finished) return;
  finished = true;
  udp.close();
  // exit only once the (large) line is flushed to the pipe
  process.stdout.write(JSON.stringify({ packets, errors }) + "\n", () => process.exit(0));
}

const udp = new osc.UDPPort({ localAddress: "127.0.0.1", localPort: port, metadata: true });
udp.on("raw", (data) => { lastSize = data.length; });
udp.on("osc", (packet) => {
  packets.push({
    size: lastSize,
    bundle: Boolean(packet.packets),
    timeTag: packet.timeTag ?? null,
    messages: flatten(packet),
  });
  clearTimeout(timer);
  timer = setTimeout(finish, idleMs);
});
udp.on("error", (err) => { errors.push(String(err && err.message ? err.message : err)); });
udp.on("ready", () => { process.stdout.write(JSON.stringify({ ready: port }) + "\n"); });
udp.open();
setTimeout(finish, 60000); // hard stop
