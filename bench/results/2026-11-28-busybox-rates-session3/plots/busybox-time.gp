set terminal pngcairo size 900,600 font ",10" noenhanced
set grid
set key below
set output "busybox-time.png"
set title "busybox: handoff and downtime vs bandwidth"
set logscale xy
set xlabel "link Mbit/s (1000 = unshaped)"
set ylabel "seconds"
plot 'plots/busybox-edgemig.dat' u 1:2 w lp pt 7 lw 2 lc rgb "#1a7f37" t "edgemig pre-copy handoff", 'plots/busybox-edgemig.dat' u 1:3 w lp pt 6 lw 2 dt 2 lc rgb "#1a7f37" t "edgemig pre-copy downtime", 'plots/busybox-paper-table3.dat' u 1:2 w lp pt 4 lc rgb 'gray40' t "paper's Table 3 handoff"
