set terminal pngcairo size 900,600 font ",10" noenhanced
set grid
set key below
set output "facedetect-time.png"
set title "facedetect: handoff and downtime vs bandwidth"
set logscale xy
set xlabel "link Mbit/s (1000 = unshaped)"
set ylabel "seconds"
plot 'plots/facedetect-edgemig.dat' u 1:2 w lp pt 7 lw 2 lc rgb "#1a7f37" t "edgemig pre-copy handoff", 'plots/facedetect-edgemig.dat' u 1:3 w lp pt 6 lw 2 dt 2 lc rgb "#1a7f37" t "edgemig pre-copy downtime", 'plots/facedetect-prepared.dat' u 1:2 w lp pt 7 lw 2 lc rgb "#8250df" t "edgemig prepare + pre-copy handoff", 'plots/facedetect-prepared.dat' u 1:3 w lp pt 6 lw 2 dt 2 lc rgb "#8250df" t "edgemig prepare + pre-copy downtime", 'plots/facedetect-paper.dat' u 1:2 w lp pt 7 lw 2 lc rgb "#0969da" t "paper's method (xdelta3 + gzip -6) handoff", 'plots/facedetect-paper.dat' u 1:3 w lp pt 6 lw 2 dt 2 lc rgb "#0969da" t "paper's method (xdelta3 + gzip -6) downtime", 'plots/facedetect-podman.dat' u 1:2 w lp pt 7 lw 2 lc rgb "#bc4c00" t "podman checkpoint --export / restore --import handoff", 'plots/facedetect-podman.dat' u 1:3 w lp pt 6 lw 2 dt 2 lc rgb "#bc4c00" t "podman checkpoint --export / restore --import downtime", 'plots/facedetect-paper-table3.dat' u 1:2 w lp pt 4 lc rgb 'gray40' t "paper's Table 3 handoff"
