set terminal pngcairo size 900,600 font ",10" noenhanced
set grid
set key below
set output "phases.png"
set title "edgemig phases: busybox-edgemig-5-1 (handoff 0.39 s, downtime 0.33 s)"
unset key
set xlabel "seconds since the request"
set ytics ("" 0)
set yrange [-1:4]
set xrange [0:0.459]
set arrow from 0.065, graph 0 to 0.065, graph 1 nohead dt 2 lc rgb "gray30"
set label "source_stopped" at 0.075, graph 0.97 rotate by 90 right font ",8"
set arrow from 0.170, graph 0 to 0.170, graph 1 nohead dt 2 lc rgb "gray30"
set label "checkpoint_done" at 0.180, graph 0.97 rotate by 90 right font ",8"
set arrow from 0.390, graph 0 to 0.390, graph 1 nohead dt 2 lc rgb "gray30"
set label "target_running" at 0.400, graph 0.97 rotate by 90 right font ",8"
set arrow from 0.425, graph 0 to 0.425, graph 1 nohead dt 2 lc rgb "gray30"
set label "source_cleaned" at 0.435, graph 0.97 rotate by 90 right font ",8"
plot "plots/phases.dat" u 3:1:3:4:($1-0.35):($1+0.35):ytic(2) w boxxyerror fs solid 0.6 lc rgb "#1a7f37", "plots/phases.dat" u 4:1:(sprintf(" %.2f MB", $5)) w labels left font ",8"
