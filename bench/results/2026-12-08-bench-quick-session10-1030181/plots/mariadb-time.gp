set terminal pngcairo size 900,600 font ",10" noenhanced
set grid
set key below
set output "mariadb-time.png"
set title "mariadb: handoff and downtime vs bandwidth"
set logscale xy
set xlabel "link Mbit/s (1000 = unshaped)"
set ylabel "seconds"
plot 'plots/mariadb-edgemig.dat' u 1:2 w lp pt 7 lw 2 lc rgb "#1a7f37" t "edgemig pre-copy handoff", 'plots/mariadb-edgemig.dat' u 1:3 w lp pt 6 lw 2 dt 2 lc rgb "#1a7f37" t "edgemig pre-copy downtime", 'plots/mariadb-prepared.dat' u 1:2 w lp pt 7 lw 2 lc rgb "#8250df" t "edgemig prepare + pre-copy handoff", 'plots/mariadb-prepared.dat' u 1:3 w lp pt 6 lw 2 dt 2 lc rgb "#8250df" t "edgemig prepare + pre-copy downtime", 'plots/mariadb-wholefs.dat' u 1:2 w lp pt 7 lw 2 lc rgb "#cf222e" t "whole-rootfs stop-and-copy handoff", 'plots/mariadb-wholefs.dat' u 1:3 w lp pt 6 lw 2 dt 2 lc rgb "#cf222e" t "whole-rootfs stop-and-copy downtime", 'plots/mariadb-paper.dat' u 1:2 w lp pt 7 lw 2 lc rgb "#0969da" t "paper's method (xdelta3 + gzip -6) handoff", 'plots/mariadb-paper.dat' u 1:3 w lp pt 6 lw 2 dt 2 lc rgb "#0969da" t "paper's method (xdelta3 + gzip -6) downtime"
