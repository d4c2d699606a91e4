// Golden reference for dfl-detect: face-api itself (TF.js, pure-JS CPU backend) on the six
// bundled demo photos. Output: crates/dfl-detect/tests/fixtures/faceapi_tfjs_reference.json
// (rounded to 0.01 px / 1e-4 score by the snippet at the end of this comment).
//
// Rerun by hand (needs node >= 18 and npm; takes ~3 minutes):
//   mkdir /tmp/ref && cd /tmp/ref && npm init -y >/dev/null
//   npm pack @vladmandic/face-api@1.7.15 && npm install ./vladmandic-face-api-1.7.15.tgz jpeg-js@0.4.4
//   # The ESM bundle's Node platform shim needs `util`; hand it in through a global:
//   sed 's/this.util=AR(),/this.util=globalThis.__util,/' \
//     node_modules/@vladmandic/face-api/dist/face-api.esm.js > fa.mjs
//   cp <repo>/tools/reference/faceapi_detect_reference.mjs ref.mjs
//   node ref.mjs <repo>/assets/models/face-api <repo>/assets/samples/sample*.jpg > out.json
//   python3 -c "import json;d=json.load(open('out.json'));print(json.dumps({k:[{'score':round(f['score'],4),
//     'box':[round(v,2) for v in f['box']],'landmarks':[[round(x,2),round(y,2)] for x,y in f['landmarks']]}
//     for f in v] for k,v in sorted(d.items())},separators=(',',':')))" > faceapi_tfjs_reference.json
// Boxes are [x, y, width, height] in pixels, landmarks 68 x [x, y] (face-api's own crop).
import * as util from 'util';
globalThis.__util = util;
const faceapi = await import('./fa.mjs');
import fs from 'fs';
import jpeg from 'jpeg-js';
const tf = faceapi.tf;
await tf.setBackend('cpu'); await tf.ready();
const dir = process.argv[2];
function load(net, name) {
  const m = JSON.parse(fs.readFileSync(`${dir}/${name}-weights_manifest.json`));
  const buf = fs.readFileSync(`${dir}/${name}.bin`);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const wm = tf.io.decodeWeights(ab, m[0].weights);
  net.loadFromWeightMap(wm);
}
load(faceapi.nets.ssdMobilenetv1, 'ssd_mobilenetv1_model');
load(faceapi.nets.faceLandmark68Net, 'face_landmark_68_model');
const out = {};
for (const f of process.argv.slice(3)) {
  const img = jpeg.decode(fs.readFileSync(f), { useTArray: true, formatAsRGBA: false });
  const t = tf.tensor3d(img.data, [img.height, img.width, 3], 'int32');
  const res = await faceapi.detectAllFaces(t, new faceapi.SsdMobilenetv1Options({ minConfidence: 0.5 })).withFaceLandmarks();
  out[f.split('/').pop()] = res.map(r => ({ score: r.detection.score, box: [r.detection.box.x, r.detection.box.y, r.detection.box.width, r.detection.box.height], landmarks: r.landmarks.positions.map(p => [p.x, p.y]) }));
  console.error(f, res.length);
}
console.log(JSON.stringify(out));
