set terminal pngcairo size 900,600 font ",10" noenhanced
set grid
set key below
set output "phases.png"
set title "edgemig phases: facedetect-edgemig-5-1 (handoff 25.04 s, downtime 0.49 s)"
unset key
set xlabel "seconds since the request"
set ytics ("" 0)
set yrange [-1:8]
set xrange [0:27.239]
set arrow from 24.548, graph 0 to 24.548, graph 1 nohead dt 2 lc rgb "gray30"
set label "source_stopped" at 24.558, graph 0.97 rotate by 90 right font ",8"
set arrow from 24.751, graph 0 to 24.751, graph 1 nohead dt 2 lc rgb "gray30"
set label "checkpoint_done" at 24.761, graph 0.97 rotate by 90 right font ",8"
set arrow from 25.041, graph 0 to 25.041, graph 1 nohead dt 2 lc rgb "gray30"
set label "target_running" at 25.051, graph 0.97 rotate by 90 right font ",8"
set arrow from 25.052, graph 0 to 25.052, graph 1 nohead dt 2 lc rgb "gray30"
set label "route_withdrawn" at 25.062, graph 0.97 rotate by 90 right font ",8"
set arrow from 25.221, graph 0 to 25.221, graph 1 nohead dt 2 lc rgb "gray30"
set label "source_cleaned" at 25.231, graph 0.97 rotate by 90 right font ",8"
plot "plots/phases.dat" u 3:1:3:4:($1-0.35):($1+0.35):ytic(2) w boxxyerror fs solid 0.6 lc rgb "#1a7f37", "plots/phases.dat" u 4:1:(sprintf(" %.2f MB", $5)) w labels left font ",8"
