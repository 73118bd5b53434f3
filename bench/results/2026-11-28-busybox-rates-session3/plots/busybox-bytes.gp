set terminal pngcairo size 900,600 font ",10" noenhanced
set grid
set key below
set output "busybox-bytes.png"
set title "busybox: bytes on the wire after the request vs the floor"
set logscale xy
set xlabel "link Mbit/s (1000 = unshaped)"
set ylabel "MB (host link tx counters)"
plot 'plots/busybox-edgemig.dat' u 1:4 w lp pt 7 lw 2 lc rgb "#1a7f37" t "edgemig pre-copy", 'plots/busybox-edgemig.dat' u 1:($5 > 0 ? $5 : 1/0) w lp pt 2 lc rgb 'black' dt 3 t 'floor: zstd(final CRIU images + upper)'
