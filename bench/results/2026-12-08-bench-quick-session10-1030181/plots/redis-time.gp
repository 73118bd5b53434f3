set terminal pngcairo size 900,600 font ",10" noenhanced
set grid
set key below
set output "redis-time.png"
set title "redis: handoff and downtime vs bandwidth"
set logscale xy
set xlabel "link Mbit/s (1000 = unshaped)"
set ylabel "seconds"
plot 'plots/redis-edgemig.dat' u 1:2 w lp pt 7 lw 2 lc rgb "#1a7f37" t "edgemig pre-copy handoff", 'plots/redis-edgemig.dat' u 1:3 w lp pt 6 lw 2 dt 2 lc rgb "#1a7f37" t "edgemig pre-copy downtime", 'plots/redis-prepared.dat' u 1:2 w lp pt 7 lw 2 lc rgb "#8250df" t "edgemig prepare + pre-copy handoff", 'plots/redis-prepared.dat' u 1:3 w lp pt 6 lw 2 dt 2 lc rgb "#8250df" t "edgemig prepare + pre-copy downtime", 'plots/redis-wholefs.dat' u 1:2 w lp pt 7 lw 2 lc rgb "#cf222e" t "whole-rootfs stop-and-copy handoff", 'plots/redis-wholefs.dat' u 1:3 w lp pt 6 lw 2 dt 2 lc rgb "#cf222e" t "whole-rootfs stop-and-copy downtime", 'plots/redis-paper.dat' u 1:2 w lp pt 7 lw 2 lc rgb "#0969da" t "paper's method (xdelta3 + gzip -6) handoff", 'plots/redis-paper.dat' u 1:3 w lp pt 6 lw 2 dt 2 lc rgb "#0969da" t "paper's method (xdelta3 + gzip -6) downtime", 'plots/redis-podman.dat' u 1:2 w lp pt 7 lw 2 lc rgb "#bc4c00" t "podman checkpoint --export / restore --import handoff", 'plots/redis-podman.dat' u 1:3 w lp pt 6 lw 2 dt 2 lc rgb "#bc4c00" t "podman checkpoint --export / restore --import downtime"
