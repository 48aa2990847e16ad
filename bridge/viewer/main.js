// ChatAnyone viewer: plays the WebSocket motion stream (bridge/protocol.py) on a VRM or GLB avatar.
//
// Page URL query (all optional):
//   ws=ws://host:port   the stream (default: ws://<this page's host>:<config.ws_port>)
//   token=SECRET        sent to the stream as ?token=SECRET (needed when the server is not on loopback)
//   avatar=URL          avatar to load first (default: config.avatar_url, i.e. /avatar.vrm from `chatanyone serve`)
//   audio=0             do not play the server's audio
//   camera=face|body    first camera preset (default face: head and shoulders; body: head to hips)
//
// config.json (written by bridge/serve.py, so that the tables exist once, in Python):
//   ws_port, avatar_url, audio_url, audio_offset_s,
//   smplx_to_vrm          {SMPL-X joint name: VRM 1.0 humanoid bone}  (motion.conventions.SMPLX_TO_VRM)
//   arkit_to_vrm_preset   {VRM preset: {ARKit name: coefficient}}      (exporters.vrma.ARKIT_TO_VRM_EXPRESSION)
//
// Conventions (DESIGN.md): rotations are SMPL-X local, rest-relative unit quaternions (x, y, z, w), right-handed,
// +Y up, facing +Z; every SMPL-X rest frame is world-aligned, as three-vrm's normalized humanoid bones of a
// VRM 1.0 model, so a rotation is copied unchanged (VRM 0.x models face -Z in their own frame: (-x, y, -z, w),
// as @pixiv/three-vrm-animation does). Face weights are the 52 ARKit blendshapes in [0, 1], applied to VRM
// expressions of the same names (case-insensitive, "perfect sync"), or else to VRM presets through
// arkit_to_vrm_preset; on a plain GLB, to morph targets of the same names and to nodes named after the joints.
import * as THREE from "three";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import { VRMLoaderPlugin, VRMUtils } from "@pixiv/three-vrm";
import { decode } from "@msgpack/msgpack";

const query = new URLSearchParams(location.search);
const token = query.get("token");
/** `url` with the page's ?token= appended (for the server's non-public routes and the stream). */
function withToken(url) {
  return token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
}
const RECONNECT_MS = 1000;
const AUDIO_TOLERANCE_S = 0.1; // re-seek the audio when it drifts further than this from the stream clock

/** Everything the status line shows; also read by tests (tests/js/viewer_check.mjs). */
const state = {
  url: null, connected: false, header: null, ended: false,
  framesReceived: 0, framesApplied: 0, framesDropped: 0, fps: 0, lastSeq: null, lastTime: null,
  avatar: null, avatarInfo: "", audio: "none", error: null,
};
window.chatanyoneViewer = state;

const statusEl = document.getElementById("status");
const soundButton = document.getElementById("sound");

// ------------------------------------------------------------------------------------------------
// Scene
// ------------------------------------------------------------------------------------------------
const view = document.getElementById("view");
const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
renderer.setSize(view.clientWidth, view.clientHeight);
renderer.outputColorSpace = THREE.SRGBColorSpace;
view.appendChild(renderer.domElement);

const scene = new THREE.Scene();
scene.background = new THREE.Color(0x20242b);
const camera = new THREE.PerspectiveCamera(30, view.clientWidth / view.clientHeight, 0.05, 50);
camera.position.set(0, 1.35, 2.2);
const controls = new OrbitControls(camera, renderer.domElement);
controls.target.set(0, 1.3, 0);
controls.enableDamping = true;

scene.add(new THREE.HemisphereLight(0xffffff, 0x445060, 1.6));
const key = new THREE.DirectionalLight(0xffffff, 2.2);
key.position.set(1.0, 2.0, 2.5);
scene.add(key);
const grid = new THREE.GridHelper(4, 16, 0x596170, 0x3a404b);
scene.add(grid);

window.addEventListener("resize", () => {
  renderer.setSize(view.clientWidth, view.clientHeight);
  camera.aspect = view.clientWidth / view.clientHeight;
  camera.updateProjectionMatrix();
});

// ------------------------------------------------------------------------------------------------
// Avatar: a VRM (0.x or 1.0) through three-vrm, or a plain glTF/GLB
// ------------------------------------------------------------------------------------------------
let config = {};
let avatar = null; // {root, vrm|null, name}
let binding = null; // how the stream's channels reach the current avatar (built from header + avatar)

const loader = new GLTFLoader();
loader.register((parser) => new VRMLoaderPlugin(parser));

async function loadAvatar(url, name) {
  state.avatarInfo = `loading ${name}`;
  let gltf;
  try {
    gltf = await loader.loadAsync(url);
  } catch (e) {
    state.error = `cannot load avatar ${name}: ${e && e.message ? e.message : e}`;
    state.avatarInfo = `${name}: failed`;
    return;
  }
  if (avatar) {
    scene.remove(avatar.root);
    if (avatar.vrm) VRMUtils.deepDispose(avatar.root);
  }
  const vrm = gltf.userData.vrm || null;
  let root = gltf.scene;
  if (vrm) {
    VRMUtils.removeUnnecessaryVertices(vrm.scene);
    VRMUtils.combineSkeletons(vrm.scene);
    VRMUtils.rotateVRM0(vrm); // VRM 0.x faces -Z: turn it to face the camera like VRM 1.0
    root = vrm.scene;
    if (vrm.lookAt) {
      vrm.lookAt.autoUpdate = false;
      vrm.lookAt.target = undefined;
    }
  }
  root.traverse((o) => { o.frustumCulled = false; }); // skinned meshes move outside their rest bounds
  scene.add(root);
  avatar = { root, vrm, name, gltf };
  state.avatar = name;
  state.error = null;
  binding = null;
  frameCamera();
  rebind();
}

/** Camera presets: "face" (head and shoulders: the face fills about a third of the height, enough to read
 * the lips) and "body" (head to hips: the gestures). Heights in metres around the avatar's own bones. */
const CAMERA_PRESETS = {
  face: { top: ["head", 0.24], bottom: ["neck", -0.2] },
  body: { top: ["head", 0.25], bottom: ["hips", -0.15] },
};
let cameraPreset = CAMERA_PRESETS[query.get("camera")] ? query.get("camera") : "face";

function frameCamera(preset = cameraPreset) {
  cameraPreset = preset;
  for (const el of document.querySelectorAll("[data-camera]")) el.setAttribute("aria-pressed", String(el.dataset.camera === preset));
  if (!avatar) return;
  const spec = CAMERA_PRESETS[preset];
  avatar.root.updateMatrixWorld(true);
  const box = new THREE.Box3().setFromObject(avatar.root);
  const y = ([bone, dy], fallback) => {
    const node = findBone(bone);
    return node ? node.getWorldPosition(new THREE.Vector3()).y + dy : fallback;
  };
  const top = y(spec.top, box.max.y);
  const bottom = y(spec.bottom, box.min.y);
  const mid = 0.5 * (top + bottom);
  // Leave room for the status bar at the top of the page.
  const bar = document.getElementById("bar").getBoundingClientRect().height / Math.max(1, view.clientHeight);
  const halfFov = THREE.MathUtils.degToRad(camera.fov / 2);
  const dist = (0.5 * (top - bottom)) / Math.tan(halfFov) / (1 - bar) * 1.08;
  const lift = bar * Math.tan(halfFov) * dist;       // shift the view up by the bar's share
  controls.target.set(0, mid + lift, 0);
  camera.position.set(0, mid + lift, dist);
  controls.update();
}
for (const el of document.querySelectorAll("[data-camera]")) el.addEventListener("click", () => frameCamera(el.dataset.camera));

function findBone(vrmName) {
  if (!avatar) return null;
  if (avatar.vrm) return avatar.vrm.humanoid.getNormalizedBoneNode(vrmName);
  const joint = Object.keys(config.smplx_to_vrm || {}).find((k) => config.smplx_to_vrm[k] === vrmName);
  return joint ? avatar.root.getObjectByName(joint) : null;
}

/** Build `binding`: for each channel of the stream, where it goes on the current avatar. */
function rebind() {
  if (!avatar || !state.header) return;
  const { face_names: faceNames, joint_names: jointNames, parents } = state.header;
  const vrm = avatar.vrm;
  const b = { face: [], presets: [], morphs: [], bones: [], hips: null, lookAt: null, flip: false };

  // Which node receives each joint (null: the avatar lacks that bone).
  const nodes = jointNames.map((joint) => {
    if (vrm) {
      const bone = (config.smplx_to_vrm || {})[joint];
      if (!bone || (vrm.lookAt && (bone === "leftEye" || bone === "rightEye"))) return null; // eyes: lookAt
      return vrm.humanoid.getNormalizedBoneNode(bone) || null;
    }
    return avatar.root.getObjectByName(joint) || null;
  });
  jointNames.forEach((joint, j) => {
    const node = nodes[j];
    if (!node) return;
    // A missing bone between this joint and its nearest present ancestor passes its rotation down
    // (rest frames are world-aligned, so local rotations compose along the chain).
    const chain = [];
    for (let p = parents[j]; p >= 0 && !nodes[p]; p = parents[p]) chain.unshift(p);
    b.bones.push({ joint: j, node, chain, rest: node.quaternion.clone() });
  });
  if (vrm) {
    b.flip = vrm.meta && vrm.meta.metaVersion === "0";
    const hips = vrm.humanoid.getNormalizedBoneNode("hips");
    if (hips) b.hips = { node: hips, rest: hips.position.clone() };
    const em = vrm.expressionManager;
    const byLower = new Map();
    if (em) for (const e of em.expressions) byLower.set(e.expressionName.toLowerCase(), e.expressionName);
    faceNames.forEach((n, i) => {
      const name = byLower.get(n.toLowerCase());
      if (name) b.face.push({ index: i, name });
    });
    if (b.face.length === 0 && em) {
      const blinkNames = {};
      for (const [preset, coefs] of Object.entries(config.arkit_to_vrm_preset || {})) {
        const name = byLower.get(preset.toLowerCase());
        if (!name) continue;
        if (preset === "blink" || preset === "blinkLeft" || preset === "blinkRight") {
          blinkNames[preset] = name;
          continue;
        }
        const terms = Object.entries(coefs).map(([n, c]) => [faceNames.indexOf(n), c]).filter(([i]) => i >= 0);
        b.presets.push({ name, terms });
      }
      const left = faceNames.indexOf("eyeBlinkLeft"), right = faceNames.indexOf("eyeBlinkRight");
      if (Object.keys(blinkNames).length && left >= 0 && right >= 0) {
        b.blinks = { names: blinkNames, left, right };
        for (const name of Object.values(blinkNames)) b.presets.push({ name, terms: [] }); // listed, set below
      }
    }
    // Gaze: a bone LookAt turns the eyeballs (the eyeLook* expressions then move only the lids); an
    // expression LookAt drives the look* presets, unless the stream's eyeLook* expressions already do.
    const applier = vrm.lookAt && vrm.lookAt.applier;
    const boneLookAt = !!applier && applier.constructor && applier.constructor.type === "bone";
    const gazeByExpressions = b.face.some((f) => faceNames[f.index].startsWith("eyeLook"));
    if (vrm.lookAt && (boneLookAt || !gazeByExpressions)) {
      const eyes = ["left_eye_smplhf", "right_eye_smplhf"].map((n) => jointNames.indexOf(n)).filter((i) => i >= 0);
      if (eyes.length) b.lookAt = eyes;
    }
  } else {
    const root = avatar.root;
    const hipsNode = nodes[0];
    if (hipsNode) b.hips = { node: hipsNode, rest: hipsNode.position.clone() };
    root.traverse((o) => {
      if (!o.morphTargetDictionary || !o.morphTargetInfluences) return;
      faceNames.forEach((n, i) => {
        const k = o.morphTargetDictionary[n];
        if (k !== undefined) b.morphs.push({ index: i, mesh: o, target: k });
      });
    });
  }
  binding = b;
  const faceCount = vrm ? (b.face.length ? `${b.face.length} ARKit expressions` : `${b.presets.length} presets`)
    : `${new Set(b.morphs.map((m) => m.index)).size} morph targets`;
  state.avatarInfo = `${avatar.name} (${vrm ? "VRM " + (vrm.meta ? vrm.meta.metaVersion : "?") : "glTF"}, `
    + `${b.bones.length} bones, ${faceCount}${b.lookAt ? ", lookAt" : ""})`;
}

// ------------------------------------------------------------------------------------------------
// Applying a frame
// ------------------------------------------------------------------------------------------------
const _q = new THREE.Quaternion();
const _qa = new THREE.Quaternion();
const _euler = new THREE.Euler();

function setQuat(target, rot, j) {
  return target.set(rot[4 * j], rot[4 * j + 1], rot[4 * j + 2], rot[4 * j + 3]);
}

function applyFrame(frame) {
  if (!binding || !avatar) return;
  const { face, rotations: rot, translation } = frame;
  const vrm = avatar.vrm;
  for (const bone of binding.bones) {
    _q.identity();
    for (const p of bone.chain) _q.multiply(setQuat(_qa, rot, p));
    _q.multiply(setQuat(_qa, rot, bone.joint));
    if (binding.flip) _q.set(-_q.x, _q.y, -_q.z, _q.w);
    if (vrm) bone.node.quaternion.copy(_q);
    else bone.node.quaternion.copy(bone.rest).multiply(_q);
  }
  if (binding.hips) {
    const s = binding.flip ? -1 : 1;
    binding.hips.node.position.set(binding.hips.rest.x + s * translation[0], binding.hips.rest.y + translation[1],
      binding.hips.rest.z + s * translation[2]);
  }
  if (vrm && vrm.expressionManager) {
    const em = vrm.expressionManager;
    for (const f of binding.face) em.setValue(f.name, face[f.index]);
    for (const p of binding.presets) {
      let w = 0;
      for (const [i, c] of p.terms) w += c * face[i];
      em.setValue(p.name, Math.min(1, Math.max(0, w)));
    }
    if (binding.blinks) {
      // blink = min(left, right), blinkLeft/Right = the rest of each eye (exporters.vrma.preset_weights):
      // an avatar binding blink and blinkLeft to the same lid never sees more than the ARKit weight.
      const [l, r] = [face[binding.blinks.left], face[binding.blinks.right]];
      const both = Math.min(1, Math.max(0, Math.min(l, r)));
      if (binding.blinks.names.blink) em.setValue(binding.blinks.names.blink, both);
      if (binding.blinks.names.blinkLeft) em.setValue(binding.blinks.names.blinkLeft, Math.max(0, l - both));
      if (binding.blinks.names.blinkRight) em.setValue(binding.blinks.names.blinkRight, Math.max(0, r - both));
    }
  }
  for (const m of binding.morphs) m.mesh.morphTargetInfluences[m.target] = face[m.index];
  if (binding.lookAt) {
    // Gaze: the normalised mean of the eye rotations (relative to the head), as yaw about Y and pitch
    // about X (Euler YXZ, degrees); three-vrm: positive yaw looks to the avatar's left, positive pitch down.
    _q.set(0, 0, 0, 0);
    for (const j of binding.lookAt) {
      setQuat(_qa, rot, j);
      if (_q.x * _qa.x + _q.y * _qa.y + _q.z * _qa.z + _q.w * _qa.w < 0) _qa.set(-_qa.x, -_qa.y, -_qa.z, -_qa.w);
      _q.set(_q.x + _qa.x, _q.y + _qa.y, _q.z + _qa.z, _q.w + _qa.w);
    }
    _q.normalize();
    _euler.setFromQuaternion(_q, "YXZ");
    vrm.lookAt.yaw = THREE.MathUtils.radToDeg(_euler.y);
    vrm.lookAt.pitch = THREE.MathUtils.radToDeg(_euler.x);
  }
  state.framesApplied += 1;
  state.lastAppliedSeq = frame.seq;
}

// For tests and debugging: what the avatar shows now, and where it is on the screen.
window.chatanyoneViewerProbe = {
  /** The last applied frame's seq, the avatar's expression weights and its bones' local rotations (xyzw). */
  pose() {
    if (!avatar || !binding || state.lastAppliedSeq === undefined) return null;
    const names = state.header.joint_names;
    const out = { seq: state.lastAppliedSeq, expressions: {}, bones: {}, morphs: {} };
    const em = avatar.vrm && avatar.vrm.expressionManager;
    if (em) for (const f of [...binding.face, ...binding.presets]) out.expressions[f.name] = em.getValue(f.name);
    for (const m of binding.morphs) out.morphs[state.header.face_names[m.index]] = m.mesh.morphTargetInfluences[m.target];
    for (const b of binding.bones) out.bones[names[b.joint]] = b.node.quaternion.toArray();
    return out;
  },
  /** The head's on-screen box in CSS pixels ({x, y, width, height}): chin to crown and temple to temple,
   * from the head bone (0.06 m below it to 0.17 m above, 0.09 m to each side, as posed now). */
  head() {
    const head = avatar && findBone("head");
    if (!head) return null;
    avatar.root.updateMatrixWorld(true);
    const rect = renderer.domElement.getBoundingClientRect();
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const [x, y] of [[-0.09, -0.06], [0.09, -0.06], [-0.09, 0.17], [0.09, 0.17]]) {
      const v = head.localToWorld(new THREE.Vector3(x, y, 0.08)).project(camera);
      const px = rect.left + (v.x + 1) / 2 * rect.width;
      const py = rect.top + (1 - v.y) / 2 * rect.height;
      x0 = Math.min(x0, px); x1 = Math.max(x1, px); y0 = Math.min(y0, py); y1 = Math.max(y1, py);
    }
    return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
  },
  /** The current camera preset ("face" or "body"). */
  camera() { return cameraPreset; },
  /** The avatar's on-screen bounding rectangle in CSS pixels, below the status bar: {x, y, width, height}. */
  region() {
    if (!avatar) return null;
    // The humanoid's bones (joint nodes of a GLB), padded by 0.15 m: the body, arms and head as posed now.
    avatar.root.updateMatrixWorld(true);
    const box = new THREE.Box3();
    const p = new THREE.Vector3();
    if (avatar.vrm) {
      for (const bone of Object.values(avatar.vrm.humanoid.humanBones)) if (bone && bone.node) box.expandByPoint(bone.node.getWorldPosition(p));
    } else if (binding) {
      for (const b of binding.bones) box.expandByPoint(b.node.getWorldPosition(p));
    }
    if (box.isEmpty()) box.setFromObject(avatar.root);
    box.expandByScalar(0.15);
    const rect = renderer.domElement.getBoundingClientRect();
    const barBottom = document.getElementById("bar").getBoundingClientRect().bottom;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (let i = 0; i < 8; i++) {
      const v = new THREE.Vector3(i & 1 ? box.max.x : box.min.x, i & 2 ? box.max.y : box.min.y,
        i & 4 ? box.max.z : box.min.z).project(camera);
      const px = rect.left + (v.x + 1) / 2 * rect.width;
      const py = rect.top + (1 - v.y) / 2 * rect.height;
      x0 = Math.min(x0, px); x1 = Math.max(x1, px); y0 = Math.min(y0, py); y1 = Math.max(y1, py);
    }
    x0 = Math.max(x0, rect.left); y0 = Math.max(y0, rect.top, barBottom);
    x1 = Math.min(x1, rect.right); y1 = Math.min(y1, rect.bottom);
    if (!(x1 > x0 && y1 > y0)) return null;
    return { x: Math.floor(x0), y: Math.ceil(y0), width: Math.floor(x1 - x0), height: Math.floor(y1 - y0) };
  },
};

// ------------------------------------------------------------------------------------------------
// Audio: decoded once (Web Audio), kept within AUDIO_TOLERANCE_S of the stream's clock
// ------------------------------------------------------------------------------------------------
class AudioSync {
  constructor(url, offsetS) {
    this.url = url;
    this.offset = offsetS || 0;
    this.ctx = new AudioContext();
    this.buffer = null;
    this.source = null;
    this.startedAt = 0;
    this.startOffset = 0;
    soundButton.addEventListener("click", () => {
      this.ctx.resume();
      soundButton.hidden = true;
    });
  }

  async load() {
    state.audio = "loading";
    try {
      const r = await fetch(withToken(this.url));
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      this.buffer = await this.ctx.decodeAudioData(await r.arrayBuffer());
      state.audio = "ready";
    } catch (e) {
      state.audio = "none";
      state.error = `cannot play audio ${this.url}: ${e && e.message ? e.message : e}`;
    }
  }

  /** Called with each frame's time (seconds from the start of the clip). */
  follow(timeS) {
    if (!this.buffer) return;
    const want = timeS + this.offset;
    if (this.ctx.state !== "running") {
      soundButton.hidden = false;
      state.audio = "blocked (click to enable sound)";
      return;
    }
    soundButton.hidden = true;
    if (want < 0 || want >= this.buffer.duration) {
      this.stop();
      state.audio = "ready";
      return;
    }
    const pos = this.source ? this.ctx.currentTime - this.startedAt + this.startOffset : NaN;
    if (!(Math.abs(pos - want) <= AUDIO_TOLERANCE_S)) this.start(want);
    state.audio = "playing";
  }

  start(offsetS) {
    this.stop();
    const src = this.ctx.createBufferSource();
    src.buffer = this.buffer;
    src.connect(this.ctx.destination);
    src.onended = () => { if (this.source === src) this.source = null; };
    src.start(0, offsetS);
    this.source = src;
    this.startedAt = this.ctx.currentTime;
    this.startOffset = offsetS;
  }

  stop() {
    if (this.source) {
      const s = this.source;
      this.source = null;
      try { s.stop(); } catch { /* already stopped */ }
    }
  }
}
let audio = null;

// ------------------------------------------------------------------------------------------------
// Stream
// ------------------------------------------------------------------------------------------------
let pending = null; // newest frame not yet applied
const arrivals = []; // performance.now() of recent frames, for the fps readout

function floats(bytes, count, what) {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength !== 4 * count) {
    throw new Error(`frame field ${what} must be ${count} float32`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = dv.getFloat32(4 * i, true);
  return out;
}

function onMessage(data) {
  let msg;
  try {
    msg = decode(new Uint8Array(data));
  } catch (e) {
    state.error = `bad message: ${e.message}`;
    return;
  }
  if (!msg || typeof msg !== "object") return;
  if (msg.type === "header") {
    state.header = msg;
    state.lastSeq = null;
    state.ended = false;
    rebind();
  } else if (msg.type === "frame") {
    if (!state.header) return;
    const nf = state.header.face_names.length;
    const nj = state.header.joint_names.length;
    let frame;
    try {
      frame = {
        seq: msg.seq, time: msg.time, face: floats(msg.face, nf, "face"),
        rotations: floats(msg.rotations, 4 * nj, "rotations"), translation: floats(msg.translation, 3, "translation"),
      };
    } catch (e) {
      state.error = e.message;
      return;
    }
    // A gap in the sequence numbers: the server dropped frames for this client (slow client).
    if (state.lastSeq !== null && frame.seq > state.lastSeq + 1) state.framesDropped += frame.seq - state.lastSeq - 1;
    state.lastSeq = frame.seq;
    state.lastTime = frame.time;
    state.framesReceived += 1;
    state.ended = false;
    const now = performance.now();
    arrivals.push(now);
    while (arrivals.length && arrivals[0] < now - 1000) arrivals.shift();
    pending = frame;
    if (audio) audio.follow(frame.time);
  } else if (msg.type === "end") {
    state.ended = true;
    state.lastSeq = null;
  }
}

function streamUrl() {
  return withToken(query.get("ws") || config.ws_url
    || `ws://${location.hostname || "127.0.0.1"}:${config.ws_port || 8765}`);
}

function connect() {
  const url = streamUrl();
  state.url = url.replace(/token=[^&]*/, "token=…");
  let ws;
  try {
    ws = new WebSocket(url);
  } catch (e) {
    state.error = `cannot connect to ${state.url}: ${e.message}`;
    return;
  }
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { state.connected = true; state.error = null; };
  ws.onmessage = (ev) => { if (ev.data instanceof ArrayBuffer) onMessage(ev.data); };
  ws.onclose = (ev) => {
    state.connected = false;
    if (ev.code !== 1000 && ev.code !== 1005 && ev.reason) state.error = `stream closed: ${ev.reason}`;
    setTimeout(connect, RECONNECT_MS);
  };
}

// ------------------------------------------------------------------------------------------------
// Status line and render loop
// ------------------------------------------------------------------------------------------------
function statusText() {
  const parts = [];
  parts.push(state.connected ? `connected ${state.url}` : `connecting to ${state.url || "…"}`);
  if (state.header) parts.push(`stream ${state.header.fps} fps`);
  parts.push(`recv ${arrivals.length} fps`);
  parts.push(`frames ${state.framesReceived}`);
  parts.push(`dropped ${state.framesDropped}`);
  if (state.lastTime !== null) parts.push(`t ${state.lastTime.toFixed(2)} s`);
  if (state.ended) parts.push("ended");
  parts.push(`audio ${state.audio}`);
  parts.push(`avatar ${state.avatarInfo || "none"}`);
  if (state.error) parts.push(`error: ${state.error}`);
  return parts.join(" · ");
}

const clock = new THREE.Clock();
let lastStatus = 0;
function tick() {
  const dt = clock.getDelta();
  if (pending) {
    applyFrame(pending);
    pending = null;
  }
  if (avatar && avatar.vrm) avatar.vrm.update(dt);
  controls.update();
  renderer.render(scene, camera);
  const now = performance.now();
  if (now - lastStatus > 250) {
    state.fps = arrivals.length;
    statusEl.textContent = statusText();
    lastStatus = now;
  }
  requestAnimationFrame(tick);
}

// ------------------------------------------------------------------------------------------------
// User's own avatar: file picker or drag and drop
// ------------------------------------------------------------------------------------------------
function loadUserFile(file) {
  if (!file) return;
  const url = URL.createObjectURL(file);
  loadAvatar(url, file.name).finally(() => URL.revokeObjectURL(url));
}
document.getElementById("avatar-file").addEventListener("change", (ev) => loadUserFile(ev.target.files[0]));
window.addEventListener("dragover", (ev) => ev.preventDefault());
window.addEventListener("drop", (ev) => {
  ev.preventDefault();
  loadUserFile(ev.dataTransfer && ev.dataTransfer.files[0]);
});

async function main() {
  try {
    const r = await fetch(withToken("config.json"), { cache: "no-store" });
    if (r.ok) config = await r.json();
  } catch { /* served by another server: defaults and the query only */ }
  requestAnimationFrame(tick);
  connect();
  const avatarUrl = query.get("avatar") || config.avatar_url;
  if (avatarUrl) loadAvatar(avatarUrl, avatarUrl.split("/").pop());
  if (config.audio_url && query.get("audio") !== "0") {
    audio = new AudioSync(config.audio_url, config.audio_offset_s);
    audio.load();
  }
}
main();
