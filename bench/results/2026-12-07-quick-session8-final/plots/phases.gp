set terminal pngcairo size 900,600 font ",10" noenhanced
set grid
set key below
set output "phases.png"
set title "edgemig phases: facedetect-edgemig-5-1 (handoff 23.84 s, downtime 0.36 s)"
unset key
set xlabel "seconds since the request"
set ytics ("" 0)
set yrange [-1:8]
set xrange [0:25.857]
set arrow from 23.480, graph 0 to 23.480, graph 1 nohead dt 2 lc rgb "gray30"
set label "source_stopped" at 23.490, graph 0.97 rotate by 90 right font ",8"
set arrow from 23.638, graph 0 to 23.638, graph 1 nohead dt 2 lc rgb "gray30"
set label "checkpoint_done" at 23.648, graph 0.97 rotate by 90 right font ",8"
set arrow from 23.842, graph 0 to 23.842, graph 1 nohead dt 2 lc rgb "gray30"
set label "target_running" at 23.852, graph 0.97 rotate by 90 right font ",8"
set arrow from 23.852, graph 0 to 23.852, graph 1 nohead dt 2 lc rgb "gray30"
set label "route_withdrawn" at 23.862, graph 0.97 rotate by 90 right font ",8"
set arrow from 23.942, graph 0 to 23.942, graph 1 nohead dt 2 lc rgb "gray30"
set label "source_cleaned" at 23.952, graph 0.97 rotate by 90 right font ",8"
plot "plots/phases.dat" u 3:1:3:4:($1-0.35):($1+0.35):ytic(2) w boxxyerror fs solid 0.6 lc rgb "#1a7f37", "plots/phases.dat" u 4:1:(sprintf(" %.2f MB", $5)) w labels left font ",8"
