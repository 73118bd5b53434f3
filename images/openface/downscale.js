// node downscale.js IN OUT FACTOR: box-filter downscale a JPEG (jpeg-js).
const fs = require('fs');
const jpeg = require('jpeg-js');
const [inp, out, f] = [process.argv[2], process.argv[3], Number(process.argv[4])];
const a = jpeg.decode(fs.readFileSync(inp), { useTArray: true, maxMemoryUsageInMB: 512 });
const w = Math.floor(a.width / f), h = Math.floor(a.height / f);
const o = Buffer.alloc(w * h * 4);
for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 4; c++) {
  let s = 0;
  for (let j = 0; j < f; j++) for (let i = 0; i < f; i++) s += a.data[((y * f + j) * a.width + x * f + i) * 4 + c];
  o[(y * w + x) * 4 + c] = Math.round(s / (f * f));
}
fs.writeFileSync(out, jpeg.encode({ data: o, width: w, height: h }, 90).data);
