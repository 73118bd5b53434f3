set terminal pngcairo size 900,600 font ",10" noenhanced
set grid
set key below
set output "busybox-bytes.png"
set title "busybox: bytes on the wire after the request vs the floor"
set logscale xy
set xlabel "link Mbit/s (1000 = unshaped)"
set ylabel "MB (host link tx counters)"
plot 'plots/busybox-edgemig.dat' u 1:4 w lp pt 7 lw 2 lc rgb "#1a7f37" t "edgemig pre-copy", 'plots/busybox-prepared.dat' u 1:4 w lp pt 7 lw 2 lc rgb "#8250df" t "edgemig prepare + pre-copy", 'plots/busybox-hybrid.dat' u 1:4 w lp pt 7 lw 2 lc rgb "#bf8700" t "edgemig hybrid", 'plots/busybox-postcopy.dat' u 1:4 w lp pt 7 lw 2 lc rgb "#57606a" t "edgemig post-copy", 'plots/busybox-wholefs.dat' u 1:4 w lp pt 7 lw 2 lc rgb "#cf222e" t "whole-rootfs stop-and-copy", 'plots/busybox-paper.dat' u 1:4 w lp pt 7 lw 2 lc rgb "#0969da" t "paper's method (xdelta3 + gzip -6)", 'plots/busybox-podman.dat' u 1:4 w lp pt 7 lw 2 lc rgb "#bc4c00" t "podman checkpoint --export / restore --import", 'plots/busybox-edgemig.dat' u 1:($5 > 0 ? $5 : 1/0) w lp pt 2 lc rgb 'black' dt 3 t 'floor: zstd(final CRIU images + upper, + volume)'
