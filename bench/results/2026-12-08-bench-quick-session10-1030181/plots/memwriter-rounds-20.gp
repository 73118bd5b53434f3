set terminal pngcairo size 1200,560 font ",10" noenhanced
set grid
set key below
set output "memwriter-rounds-20.png"
set multiplot layout 1,2 title "memwriter at 20 Mbit/s (link 2.5 MB/s): where pre-copy stops converging"
set logscale xy
set xlabel "dirty rate MB/s"
set ylabel "seconds"
set title "handoff and downtime vs dirty rate"
set arrow from 2.5, graph 0 to 2.5, graph 1 nohead dt 3 lc rgb "gray30"
set label "link rate" at 2.5, graph 0.95 right offset -0.5,0 font ",8"
plot 'plots/memwriter-20-edgemig.dat' u 1:2 w lp pt 7 lw 2 lc rgb "#1a7f37" t "edgemig pre-copy handoff", 'plots/memwriter-20-edgemig.dat' u 1:3 w lp pt 6 lw 2 dt 2 lc rgb "#1a7f37" t "edgemig pre-copy downtime", 'plots/memwriter-20-hybrid.dat' u 1:2 w lp pt 7 lw 2 lc rgb "#bf8700" t "edgemig hybrid handoff", 'plots/memwriter-20-hybrid.dat' u 1:3 w lp pt 6 lw 2 dt 2 lc rgb "#bf8700" t "edgemig hybrid downtime", 'plots/memwriter-20-postcopy.dat' u 1:2 w lp pt 7 lw 2 lc rgb "#57606a" t "edgemig post-copy handoff", 'plots/memwriter-20-postcopy.dat' u 1:3 w lp pt 6 lw 2 dt 2 lc rgb "#57606a" t "edgemig post-copy downtime"
unset arrow
unset label
unset logscale x
set xlabel "pre-copy rounds (mean)"
set offsets 0.5, 1.2, 0, 0
set title "handoff time vs rounds (labels: dirty rate)"
plot 'plots/memwriter-20-edgemig.dat' u 4:2 w lp pt 7 lw 2 lc rgb "#1a7f37" t "edgemig pre-copy", 'plots/memwriter-20-edgemig.dat' u 4:2:(sprintf(' %g MB/s', $1)) w labels left offset 0.5,0 font ',8' notitle, 'plots/memwriter-20-hybrid.dat' u 4:2 w lp pt 7 lw 2 lc rgb "#bf8700" t "edgemig hybrid", 'plots/memwriter-20-hybrid.dat' u 4:2:(sprintf(' %g MB/s', $1)) w labels left offset 0.5,0 font ',8' notitle, 'plots/memwriter-20-postcopy.dat' u 4:2 w lp pt 7 lw 2 lc rgb "#57606a" t "edgemig post-copy", 'plots/memwriter-20-postcopy.dat' u 4:2:(sprintf(' %g MB/s', $1)) w labels left offset 0.5,0 font ',8' notitle
unset multiplot
