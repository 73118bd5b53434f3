// edgemig test workload: an OpenFace-class face recognition TCP service.
//
// OpenFace's pipeline on @vladmandic/face-api with tfjs's wasm backend
// (the .wasm ships in the npm package; no native addon; models ship inside
// face-api; nothing is fetched at run time):
// SSD MobileNet v1 face detection -> 68-point landmarks -> aligned face crop
// -> 128-d ResNet embedding -> nearest gallery identity (Euclidean distance).
//
// The gallery is enrolled at start from the photos in OPENFACE_GALLERY
// (default /app/gallery/*.jpg), each MIRRORED left-right, so a query with the
// unmirrored photo matches by identity, not by identical pixels. Identity
// labels are "<file stem>-<k>", faces numbered left to right.
//
// Protocol (as the facedetect service; many requests per connection):
//   client -> server: 4-byte big-endian length N, then N bytes of a JPEG
//   server -> client: 4-byte big-endian length M, then M bytes of JSON
//     {"ids": ["sample2-0", null, ...], "dist": [0.31, ...], "n": K, "seq": S}
//   ids: per detected face, left to right, the matched identity or null when
//   no gallery face is nearer than OPENFACE_THRESHOLD (default 0.6).
//   S counts requests served (in memory only: a live migration preserves it).
//   A bad request gets {"error": "...", "seq": S}.
//
// Environment: OPENFACE_PORT (8080), OPENFACE_HOST (0.0.0.0),
// OPENFACE_MODELS (/app/model), OPENFACE_GALLERY (/app/gallery),
// OPENFACE_THRESHOLD (0.6), OPENFACE_BACKEND (wasm; cpu = pure JS, ~10x slower).
'use strict';

const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
// The package's node build that needs no native addon (tfjs + its wasm
// backend, which ships its .wasm).
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const jpeg = require('jpeg-js');
const tf = faceapi.tf;
const env = process.env;
const MODELS = env.OPENFACE_MODELS || '/app/model';
const GALLERY = env.OPENFACE_GALLERY || '/app/gallery';
const THRESHOLD = Number(env.OPENFACE_THRESHOLD || 0.6);
const MAX_IMAGE = 16 * 1024 * 1024;
const DETECT = new faceapi.SsdMobilenetv1Options({ minConfidence: 0.5 });

function log(msg) { process.stderr.write(`openface: ${msg}\n`); }

// Weights from the package's manifest + .bin (one shard each), no fetch.
async function loadNet(net_, name) {
  const man = JSON.parse(fs.readFileSync(path.join(MODELS, `${name}-weights_manifest.json`)));
  const specs = man.flatMap((g) => g.weights);
  const bins = man.flatMap((g) => g.paths.map((p) => fs.readFileSync(path.join(MODELS, p))));
  const buf = Buffer.concat(bins);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
  await net_.loadFromWeightMap(tf.io.decodeWeights(ab, specs));
}

function decode(data, mirror) {
  const img = jpeg.decode(data, { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 256 });
  return tf.tidy(() => {
    const t = tf.tensor3d(img.data, [img.height, img.width, 3], 'int32');
    return mirror ? tf.reverse(t, 1) : t;
  });
}

async function describe(data, mirror) {
  const t = decode(data, mirror);
  try {
    const faces = await faceapi.detectAllFaces(t, DETECT).withFaceLandmarks().withFaceDescriptors();
    return faces.sort((a, b) => a.detection.box.x - b.detection.box.x);
  } finally {
    t.dispose();
  }
}

const gallery = []; // {id, desc}

async function enroll() {
  const files = fs.readdirSync(GALLERY).filter((f) => f.endsWith('.jpg')).sort();
  for (const f of files) {
    const faces = await describe(fs.readFileSync(path.join(GALLERY, f)), true);
    // Mirrored, the faces run right to left: number them as the original.
    faces.reverse().forEach((d, k) => gallery.push({ id: `${path.basename(f, '.jpg')}-${k}`, desc: d.descriptor }));
  }
  if (!gallery.length) throw new Error(`no faces enrolled from ${GALLERY}`);
  log(`gallery: ${gallery.length} faces from ${files.length} photos`);
}

function match(desc) {
  let best = null;
  let bestD = Infinity;
  for (const g of gallery) {
    const d = faceapi.euclideanDistance(desc, g.desc);
    if (d < bestD) { bestD = d; best = g.id; }
  }
  return [bestD < THRESHOLD ? best : null, Math.round(bestD * 1000) / 1000];
}

let seq = 0;
let queue = Promise.resolve(); // one inference at a time (one backend)

async function answer(data) {
  seq += 1;
  const s = seq;
  try {
    const faces = await describe(data, false);
    const m = faces.map((f) => match(f.descriptor));
    return { ids: m.map((x) => x[0]), dist: m.map((x) => x[1]), n: faces.length, seq: s };
  } catch (e) {
    return { error: String(e.message || e), seq: s };
  }
}

function serve(sock) {
  let buf = Buffer.alloc(0);
  sock.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 4) {
      const n = buf.readUInt32BE(0);
      if (n === 0 || n > MAX_IMAGE) { sock.destroy(); return; }
      if (buf.length < 4 + n) break;
      const img = buf.subarray(4, 4 + n);
      buf = buf.subarray(4 + n);
      queue = queue.then(async () => {
        const out = Buffer.from(JSON.stringify(await answer(img)));
        const hdr = Buffer.alloc(4);
        hdr.writeUInt32BE(out.length);
        if (!sock.destroyed) sock.write(Buffer.concat([hdr, out]));
      });
    }
  });
  sock.on('error', () => {});
}

async function main() {
  await tf.setBackend(env.OPENFACE_BACKEND || 'wasm');
  await tf.ready();
  await loadNet(faceapi.nets.ssdMobilenetv1, 'ssd_mobilenetv1_model');
  await loadNet(faceapi.nets.faceLandmark68Net, 'face_landmark_68_model');
  await loadNet(faceapi.nets.faceRecognitionNet, 'face_recognition_model');
  await enroll();
  const port = Number(env.OPENFACE_PORT || 8080);
  net.createServer(serve).listen(port, env.OPENFACE_HOST || '0.0.0.0',
    () => log(`listening on ${port} (tfjs ${tf.version_core}, backend ${tf.getBackend()})`));
}

main().catch((e) => { log(`fatal: ${e.stack || e}`); process.exit(1); });
