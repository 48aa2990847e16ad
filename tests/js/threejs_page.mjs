// The page that tests/js/threejs_check.mjs loads in headless Chromium (bundled by esbuild).
// It plays our exports with the libraries users use: a GLB with three.js' GLTFLoader + AnimationMixer, and
// a VRM Animation (.vrma) on a VRM 1.0 avatar with @pixiv/three-vrm + @pixiv/three-vrm-animation.
// Everything is driven through window.check (called by playwright): load*, then show*(seconds), which
// poses the avatar at that time, renders one frame and returns what three.js holds (for the test to
// compare with the clip).
import * as THREE from "three";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";
import { VRMLoaderPlugin } from "@pixiv/three-vrm";
import { VRMAnimationLoaderPlugin, createVRMAnimationClip, VRMLookAtQuaternionProxy } from "@pixiv/three-vrm-animation";

const WIDTH = 480;
const HEIGHT = 480;
const BACKGROUND = 0x203040;

const canvas = document.getElementById("view");
const renderer = new THREE.WebGLRenderer({ canvas, antialias: false, preserveDrawingBuffer: true });
renderer.setPixelRatio(1);
renderer.setSize(WIDTH, HEIGHT, false);
renderer.setClearColor(BACKGROUND, 1);

function makeScene() {
  const scene = new THREE.Scene();
  scene.add(new THREE.HemisphereLight(0xffffff, 0x444444, 2.0));
  const sun = new THREE.DirectionalLight(0xffffff, 2.0);
  sun.position.set(1, 2, 3);
  scene.add(sun);
  return scene;
}

// Upper body, from the front (the avatar faces +Z, so the camera sits on +Z looking back).
const camera = new THREE.PerspectiveCamera(40, WIDTH / HEIGHT, 0.05, 20);
camera.position.set(0, 1.3, 1.9);
camera.lookAt(0, 1.2, 0);

const state = {};

function quatOf(obj) {
  return [obj.quaternion.x, obj.quaternion.y, obj.quaternion.z, obj.quaternion.w];
}

async function loadGLB(url) {
  const gltf = await new GLTFLoader().loadAsync(url);
  const scene = makeScene();
  scene.add(gltf.scene);
  const mixer = new THREE.AnimationMixer(gltf.scene);
  const clip = gltf.animations[0];
  mixer.clipAction(clip).play();
  let face = null;
  gltf.scene.traverse((o) => {
    if (o.isMesh && o.morphTargetDictionary && Object.keys(o.morphTargetDictionary).length) face = o;
  });
  const skinned = [];
  gltf.scene.traverse((o) => { if (o.isSkinnedMesh) skinned.push(o.name); });
  state.glb = { gltf, scene, mixer, face };
  return {
    animations: gltf.animations.length, duration: clip.duration, tracks: clip.tracks.length,
    trackNames: clip.tracks.map((t) => t.name), skinnedMeshes: skinned,
    morphTargetNames: face ? Object.keys(face.morphTargetDictionary).sort((a, b) =>
      face.morphTargetDictionary[a] - face.morphTargetDictionary[b]) : [],
  };
}

function showGLB(seconds) {
  const { gltf, scene, mixer, face } = state.glb;
  mixer.setTime(seconds);
  renderer.render(scene, camera);
  const bones = {};
  gltf.scene.traverse((o) => { if (o.isBone) bones[o.name] = quatOf(o); });
  const root = gltf.scene.getObjectByName("pelvis");
  return { bones, rootPosition: root.position.toArray(), morphs: Array.from(face.morphTargetInfluences) };
}

async function loadVRM(vrmUrl, vrmaUrl) {
  const loader = new GLTFLoader();
  loader.register((parser) => new VRMLoaderPlugin(parser));
  loader.register((parser) => new VRMAnimationLoaderPlugin(parser));
  const vrm = (await loader.loadAsync(vrmUrl)).userData.vrm;
  const vrmAnimation = (await loader.loadAsync(vrmaUrl)).userData.vrmAnimations[0];
  const scene = makeScene();
  scene.add(vrm.scene);
  const proxy = new VRMLookAtQuaternionProxy(vrm.lookAt);
  proxy.name = "lookAtQuaternionProxy";
  vrm.scene.add(proxy);
  const clip = createVRMAnimationClip(vrmAnimation, vrm);
  const mixer = new THREE.AnimationMixer(vrm.scene);
  mixer.clipAction(clip).play();
  let face = null;
  vrm.scene.traverse((o) => {
    if (o.isMesh && o.morphTargetDictionary && Object.keys(o.morphTargetDictionary).length) face = o;
  });
  state.vrm = { vrm, scene, mixer, face };
  const humanBones = Object.entries(vrm.humanoid.humanBones).filter(([, b]) => b && b.node).map(([n]) => n);
  const em = vrm.expressionManager;
  return {
    metaVersion: vrm.meta.metaVersion, name: vrm.meta.name, licenseUrl: vrm.meta.licenseUrl,
    humanBones, presetExpressions: Object.keys(em.presetExpressionMap),
    customExpressions: Object.keys(em.customExpressionMap),
    lookAtType: vrm.lookAt ? vrm.lookAt.applier.constructor.type : null,
    clipDuration: clip.duration, clipTracks: clip.tracks.map((t) => t.name),
    animationHumanBones: Array.from(vrmAnimation.humanoidTracks.rotation.keys()),
    animationExpressions: {
      preset: Array.from(vrmAnimation.expressionTracks.preset.keys()),
      custom: Array.from(vrmAnimation.expressionTracks.custom.keys()),
    },
    hasLookAtTrack: vrmAnimation.lookAtTrack != null,
    morphTargetNames: face ? Object.keys(face.morphTargetDictionary).sort((a, b) =>
      face.morphTargetDictionary[a] - face.morphTargetDictionary[b]) : [],
  };
}

function showVRM(seconds) {
  const { vrm, scene, mixer, face } = state.vrm;
  mixer.setTime(seconds);
  vrm.update(0);
  renderer.render(scene, camera);
  const normalized = {};
  for (const name of Object.keys(vrm.humanoid.humanBones)) {
    const node = vrm.humanoid.getNormalizedBoneNode(name);
    if (node) normalized[name] = quatOf(node);
  }
  const em = vrm.expressionManager;
  const expressions = {};
  for (const e of em.expressions) expressions[e.expressionName] = em.getValue(e.expressionName);
  return {
    normalized, expressions, yaw: vrm.lookAt.yaw, pitch: vrm.lookAt.pitch,
    morphs: Array.from(face.morphTargetInfluences),
  };
}

window.check = { loadGLB, showGLB, loadVRM, showVRM,
  webgl: () => ({ renderer: renderer.getContext().getParameter(renderer.getContext().VERSION) }) };
window.checkReady = true;
