set terminal pngcairo size 900,600 font ",10" noenhanced
set grid
set key below
set output "phases.png"
set title "edgemig phases: busybox-edgemig-5-1 (handoff 0.48 s, downtime 0.42 s)"
unset key
set xlabel "seconds since the request"
set ytics ("" 0)
set yrange [-1:4]
set xrange [0:0.541]
set arrow from 0.053, graph 0 to 0.053, graph 1 nohead dt 2 lc rgb "gray30"
set label "source_stopped" at 0.063, graph 0.97 rotate by 90 right font ",8"
set arrow from 0.276, graph 0 to 0.276, graph 1 nohead dt 2 lc rgb "gray30"
set label "checkpoint_done" at 0.286, graph 0.97 rotate by 90 right font ",8"
set arrow from 0.478, graph 0 to 0.478, graph 1 nohead dt 2 lc rgb "gray30"
set label "target_running" at 0.488, graph 0.97 rotate by 90 right font ",8"
set arrow from 0.501, graph 0 to 0.501, graph 1 nohead dt 2 lc rgb "gray30"
set label "source_cleaned" at 0.511, graph 0.97 rotate by 90 right font ",8"
plot "plots/phases.dat" u 3:1:3:4:($1-0.35):($1+0.35):ytic(2) w boxxyerror fs solid 0.6 lc rgb "#1a7f37", "plots/phases.dat" u 4:1:(sprintf(" %.2f MB", $5)) w labels left font ",8"
